//! Rebuilding the read model and the search index from the system of record.
//!
//! Safe while traffic flows: every write goes through the read model's version guard, so a
//! projection the consumer has already moved past is left alone, and one the rebuild writes is
//! superseded by any newer envelope that arrives later.

use crate::ports::{Applied, EventScan, ReadModel, SearchIndex, StoreError};

/// Running totals, reported after every page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub pages: u64,
    pub scanned: u64,
    pub written: u64,
    pub already_current: u64,
    /// Events whose search entries were (re)written.
    pub indexed: u64,
}

pub async fn rebuild_read_model(
    source: &impl EventScan,
    read_model: &impl ReadModel,
    search: &impl SearchIndex,
    mut report: impl FnMut(&Progress),
) -> Result<Progress, StoreError> {
    let mut progress = Progress::default();
    let mut resume = None;
    loop {
        let (events, next) = source.scan_page(resume).await?;
        for event in &events {
            match read_model.apply(event).await? {
                Applied::Changed => progress.written += 1,
                Applied::Stale => progress.already_current += 1,
            }
            if search.index(event).await? == Applied::Changed {
                progress.indexed += 1;
            }
        }
        progress.pages += 1;
        progress.scanned += events.len() as u64;
        report(&progress);
        match next {
            Some(token) => resume = Some(token),
            None => return Ok(progress),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Description, Event, EventDraft, Schedule, Tags, Timestamp, Title, UserId, Venue, Visibility,
    };
    use crate::fakes::InMemoryEvents;
    use crate::ports::{Consistency, EventReader, EventStore};

    fn event(title: &str) -> Event {
        let now = Timestamp::now();
        let draft = EventDraft {
            title: Title::parse("title", title).unwrap(),
            description: Description::parse("d", "").unwrap(),
            schedule: Schedule::upcoming(now.plus_seconds(60), now.plus_seconds(120), now).unwrap(),
            venue: Venue::parse("v", "Here").unwrap(),
            tags: Tags::default(),
            visibility: Visibility::Public,
            capacity: None,
        };
        Event::create(draft, UserId::parse("sub", "u").unwrap(), now)
    }

    #[tokio::test]
    async fn a_rebuild_restores_every_event_and_keeps_newer_projections() {
        let source = InMemoryEvents::default();
        let read_model = InMemoryEvents::default();
        let events: Vec<Event> = (0..5).map(|i| event(&format!("Event {i}"))).collect();
        for e in &events {
            let envelope = crate::envelope::DomainEvent::EventCreated(e.clone()).into_envelope(
                "/t",
                crate::envelope::CorrelationId::generate(),
                Timestamp::now(),
            );
            source.create(e, &envelope).await.unwrap();
        }
        // The consumer already applied a newer version of one event.
        let mut newer = events[0].clone();
        newer.version = 3;
        newer.title = Title::parse("title", "Newer").unwrap();
        read_model.apply(&newer).await.unwrap();
        let mut reports = Vec::new();

        let search = crate::fakes::InMemorySearch::default();
        let done = rebuild_read_model(&source, &read_model, &search, |p: &Progress| {
            reports.push(*p)
        })
        .await
        .unwrap();

        assert_eq!(
            (done.scanned, done.written, done.already_current),
            (5, 4, 1)
        );
        assert_eq!(done.indexed, 5);
        assert_eq!(reports.len(), 3, "one report per page of two");
        let kept = read_model
            .get(&events[0].id, Consistency::Eventual)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.title.as_str(), "Newer");
        for e in &events[1..] {
            assert!(
                read_model
                    .get(&e.id, Consistency::Eventual)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }
}
