//! Creating and reading events.

use crate::domain::{Event, EventDraft, EventId, Timestamp, UserId};
use crate::envelope::{CorrelationId, DomainEvent, Envelope};
use crate::ports::{
    Consistency, Cursor, EventReader, EventStore, EventView, Page, PageRequest, StoreError,
    ViewedEvent,
};

/// The CloudEvents `source` of everything the events API emits.
pub const SOURCE: &str = "/evently/events-api";

/// Which table answered a read; sent to clients as `X-Read-Source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    ReadModel,
    Primary,
}

impl ReadSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ReadModel => "read-model",
            Self::Primary => "primary",
        }
    }
}

/// Stores a new event together with its `EventCreated` envelope in the outbox. Publishing is
/// the relay's job: if this function dies right after the commit, the event still goes out.
pub async fn create_event(
    store: &impl EventStore,
    draft: EventDraft,
    organizer: UserId,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<(Event, Envelope), StoreError> {
    let event = Event::create(draft, organizer, now);
    let envelope =
        DomainEvent::EventCreated(event.clone()).into_envelope(SOURCE, correlation_id, now);
    store.create(&event, &envelope).await?;
    Ok((event, envelope))
}

/// Lists upcoming public events from the read model, or from the events table when the read
/// model cannot answer (missing, throttled, failing): a degraded read beats an error.
pub async fn list_events(
    read_model: &impl EventReader,
    primary: &impl EventReader,
    page: PageRequest,
) -> Result<(Page<EventView>, ReadSource), StoreError> {
    match read_model.list_upcoming_views(page).await {
        Ok(found) => Ok((found, ReadSource::ReadModel)),
        Err(error) => {
            tracing::warn!(%error, "read model unavailable; listing from the events table");
            let found = primary.list_upcoming_views(page).await?;
            Ok((found, ReadSource::Primary))
        }
    }
}

/// One event as `viewer` may see it. A private event that is not the viewer's is reported
/// exactly like a missing one, so ids of private events cannot be probed.
pub async fn get_event(
    read_model: &impl EventReader,
    primary: &impl EventReader,
    id: &EventId,
    consistency: Consistency,
    viewer: Option<&UserId>,
) -> Result<Option<(ViewedEvent, ReadSource)>, StoreError> {
    let found = match consistency {
        Consistency::Strong => primary
            .get_view(id, Consistency::Strong)
            .await?
            .map(|e| (e, ReadSource::Primary)),
        Consistency::Eventual => match read_model.get_view(id, Consistency::Eventual).await {
            Ok(Some(event)) => Some((event, ReadSource::ReadModel)),
            // Not projected yet (the relay runs behind the write), or the read model is down:
            // the events table has the answer either way.
            Ok(None) => primary
                .get_view(id, Consistency::Eventual)
                .await?
                .map(|e| (e, ReadSource::Primary)),
            Err(error) => {
                tracing::warn!(%error, "read model unavailable; reading the events table");
                primary
                    .get_view(id, Consistency::Eventual)
                    .await?
                    .map(|e| (e, ReadSource::Primary))
            }
        },
    };
    Ok(found.filter(|(event, _)| event.is_visible_to(viewer)))
}

/// Why a change to an event (or an RSVP) was refused. The HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Unknown, or private and not the caller's: the same answer, so ids cannot be probed.
    #[error("no such event")]
    NotFound,
    /// A public event the caller does not organize.
    #[error("only the organizer may change this event")]
    Forbidden,
    #[error("the event changed since it was read (version {current})")]
    Stale { current: u64 },
    #[error("{0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Invalid(#[from] crate::domain::FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn editable(
    store: &impl EventStore,
    id: &EventId,
    editor: &UserId,
) -> Result<Event, ChangeError> {
    let event = store
        .get(id, Consistency::Strong)
        .await?
        .ok_or(ChangeError::NotFound)?;
    if &event.organizer_id == editor {
        Ok(event)
    } else if event.is_visible_to(Some(editor)) {
        Err(ChangeError::Forbidden)
    } else {
        Err(ChangeError::NotFound)
    }
}

/// Applies an organizer's patch if they read the current version (`If-Match`), and announces
/// the change (`EventUpdated`, with the names of the changed fields) through the outbox.
pub async fn update_event(
    store: &impl EventStore,
    id: &EventId,
    editor: &UserId,
    expected_version: Option<u64>,
    patch: crate::domain::EventPatch,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<Event, ChangeError> {
    let event = editable(store, id, editor).await?;
    // `None` is `If-Match: *`: whatever version is current.
    let expected_version = expected_version.unwrap_or(event.version);
    if event.version != expected_version {
        return Err(ChangeError::Stale {
            current: event.version,
        });
    }
    if event.is_cancelled() {
        return Err(ChangeError::Conflict("a cancelled event cannot change"));
    }
    let (next, changed) = event.patched(patch, now)?;
    if changed.is_empty() {
        return Ok(event);
    }
    let change = crate::envelope::EventChange {
        event: next.clone(),
        changed: changed.iter().map(|c| (*c).to_owned()).collect(),
    };
    let envelope = DomainEvent::EventUpdated(change).into_envelope(SOURCE, correlation_id, now);
    store
        .update(&next, expected_version, &envelope)
        .await
        .map_err(|e| match e {
            crate::ports::UpdateError::VersionMismatch => ChangeError::Stale {
                current: expected_version + 1,
            },
            crate::ports::UpdateError::CapacityBelowAttendees => {
                ChangeError::Conflict("more people are going than the new capacity allows")
            }
            crate::ports::UpdateError::Store(e) => ChangeError::Store(e),
        })?;
    Ok(next)
}

/// Cancels an event (kept for history, hidden from listings) and announces it. Cancelling a
/// cancelled event changes nothing and announces nothing.
pub async fn cancel_event(
    store: &impl EventStore,
    id: &EventId,
    editor: &UserId,
    expected_version: Option<u64>,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<Event, ChangeError> {
    let event = editable(store, id, editor).await?;
    if event.is_cancelled() {
        return Ok(event);
    }
    if expected_version.is_some_and(|v| v != event.version) {
        return Err(ChangeError::Stale {
            current: event.version,
        });
    }
    let next = event.cancelled();
    let envelope =
        DomainEvent::EventCancelled(next.clone()).into_envelope(SOURCE, correlation_id, now);
    store
        .update(&next, event.version, &envelope)
        .await
        .map_err(|e| match e {
            crate::ports::UpdateError::Store(e) => ChangeError::Store(e),
            _ => ChangeError::Stale {
                current: event.version + 1,
            },
        })?;
    Ok(next)
}

/// Puts the caller on the attendee list, within capacity; repeating it changes nothing.
pub async fn rsvp(
    store: &impl EventStore,
    id: &EventId,
    user: &UserId,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<(crate::ports::RsvpOutcome, crate::envelope::Rsvp), ChangeError> {
    let event = store
        .get(id, Consistency::Strong)
        .await?
        .filter(|e| e.is_visible_to(Some(user)))
        .ok_or(ChangeError::NotFound)?;
    let rsvp = crate::envelope::Rsvp {
        event_id: event.id,
        user_id: user.clone(),
        at: now,
    };
    let envelope =
        DomainEvent::RsvpCreated(rsvp.clone()).into_envelope(SOURCE, correlation_id, now);
    let outcome = store
        .rsvp(&event, user, now, &envelope)
        .await
        .map_err(|e| match e {
            crate::ports::RsvpError::Full => ChangeError::Conflict("the event is full"),
            crate::ports::RsvpError::Closed => {
                ChangeError::Conflict("the event is cancelled or has already started")
            }
            crate::ports::RsvpError::Store(e) => ChangeError::Store(e),
        })?;
    Ok((outcome, rsvp))
}

/// Takes the caller off the attendee list; `false` if they were not on it.
pub async fn cancel_rsvp(
    store: &impl EventStore,
    id: &EventId,
    user: &UserId,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<bool, ChangeError> {
    store
        .get(id, Consistency::Strong)
        .await?
        .filter(|e| e.is_visible_to(Some(user)))
        .ok_or(ChangeError::NotFound)?;
    let rsvp = crate::envelope::Rsvp {
        event_id: *id,
        user_id: user.clone(),
        at: now,
    };
    let envelope = DomainEvent::RsvpCancelled(rsvp).into_envelope(SOURCE, correlation_id, now);
    Ok(store.cancel_rsvp(id, user, &envelope).await?)
}

/// How many of a user's RSVPs `/me/rsvps` looks at (most recent first).
pub const MAX_RSVPS_READ: u16 = 500;

/// The caller's upcoming, not cancelled events, by start time.
pub async fn my_rsvps(
    store: &impl EventStore,
    user: &UserId,
    now: Timestamp,
    limit: u16,
) -> Result<Vec<Event>, StoreError> {
    let ids = store.rsvps_of(user, MAX_RSVPS_READ).await?;
    let mut events: Vec<Event> = store
        .get_many(&ids)
        .await?
        .into_iter()
        .filter(|e| !e.is_cancelled() && e.starts_at > now)
        .collect();
    events.sort_by_key(|e| (e.starts_at, e.id));
    events.truncate(usize::from(limit));
    Ok(events)
}

/// Pages of the listing one search reads at most before answering with what it has (and a
/// cursor to go on), as a search of the index does: bounded work per request whatever the
/// query.
const LISTING_PAGES: usize = 10;
const LISTING_PAGE_ITEMS: u16 = 100;

/// Searches events (`q`, `tag`, `organizer`, `from`, `to`) through the search index, then
/// reads the matches from the read model, in start order. A query no index partition narrows
/// (dates alone, a last word under three characters, stop words only) reads the read model's
/// listing instead.
pub async fn search_events(
    index: &impl crate::ports::SearchIndex,
    read_model: &impl EventReader,
    query: &crate::domain::SearchQuery,
    page: PageRequest,
) -> Result<Page<Event>, StoreError> {
    if query.partition().is_none() {
        return search_listing(read_model, query, page).await;
    }
    let found = index
        .search(query, page.after, page.limit, page.cursor)
        .await?;
    let mut events: Vec<Event> = read_model
        .get_many(&found.items)
        .await?
        .into_iter()
        .filter(Event::is_listed_publicly)
        .collect();
    events.sort_by_key(|e| (e.starts_at, e.id));
    Ok(Page {
        items: events,
        next: found.next,
    })
}

/// The listing of every upcoming public event, in start order from `from` to `to`, each event
/// checked against the rest of `query`: what the index's `ALL` partition was, without one
/// more entry per event (BENCHMARKS.md, "Stop words and the organizer first"). Its events are
/// read once, where the index's matches are read again by id.
async fn search_listing(
    read_model: &impl EventReader,
    query: &crate::domain::SearchQuery,
    page: PageRequest,
) -> Result<Page<Event>, StoreError> {
    let mut request = PageRequest {
        // `from` is inclusive and `after` strict: a second earlier, then checked exactly.
        after: query
            .from
            .map_or(page.after, |from| page.after.max(from.plus_seconds(-1))),
        limit: LISTING_PAGE_ITEMS,
        cursor: page.cursor,
    };
    let mut items = Vec::new();
    for _ in 0..LISTING_PAGES {
        let listed = read_model.list_upcoming(request).await?;
        for event in listed.items {
            if query.to.is_some_and(|to| event.starts_at > to) {
                return Ok(Page { items, next: None });
            }
            let seen = Cursor {
                starts_at: event.starts_at,
                id: event.id,
            };
            if query.from.is_none_or(|from| event.starts_at >= from) && query.admits(&event) {
                items.push(event);
                if items.len() >= usize::from(page.limit) {
                    return Ok(Page {
                        items,
                        next: Some(seen),
                    });
                }
            }
            request.cursor = Some(seen);
        }
        if listed.next.is_none() {
            return Ok(Page { items, next: None });
        }
    }
    Ok(Page {
        items,
        next: request.cursor,
    })
}
