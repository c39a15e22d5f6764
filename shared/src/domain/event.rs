use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::{FieldError, Timestamp};

bounded_text!(
    /// A meetup's title: 1 to 140 characters.
    Title, allows_empty = false, max = 140
);
bounded_text!(
    /// Free text about the meetup; may be empty.
    Description, allows_empty = true, max = 5000
);
bounded_text!(
    /// Where the meetup happens: a place name or an address.
    Venue, allows_empty = false, max = 200
);

/// An event's id: a ULID, so ids sort by creation time and need no coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct EventId(Ulid);

// Written through its `Display`, without a String of its own first.
impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl EventId {
    pub fn generate() -> Self {
        Self(Ulid::generate())
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Ulid::from_str(raw)
            .map(Self)
            .map_err(|_| FieldError::new(field, "must be an event id (a 26-character ULID)"))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for EventId {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse("id", &raw)
    }
}

/// A user's id, as the token's `sub` claim carries it. Opaque to this service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct UserId(String);

serialize_as_text!(UserId);

impl UserId {
    pub fn generate() -> Self {
        Self(Ulid::generate().to_string())
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::check(field, raw).map(|()| Self(raw.to_owned()))
    }

    fn check(field: &str, raw: &str) -> Result<(), FieldError> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'|' | b':')
            });
        if ok {
            Ok(())
        } else {
            Err(FieldError::new(field, "must be a user id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::check("organizer_id", &raw)?;
        Ok(Self(raw))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lowercase slug: `rust`, `open-source`, `aws-lambda`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Tag(String);

serialize_as_text!(Tag);

impl Tag {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::check(field, raw).map(|()| Self(raw.to_owned()))
    }

    fn check(field: &str, raw: &str) -> Result<(), FieldError> {
        let well_formed = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if well_formed {
            Ok(())
        } else {
            Err(FieldError::new(
                field,
                "must be a lowercase slug of at most 32 characters (a-z, 0-9, single hyphens between words)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::check("tags", &raw)?;
        Ok(Self(raw))
    }
}

/// At most ten distinct tags, in the order the organizer gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<Tag>")]
pub struct Tags(Vec<Tag>);

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl Tags {
    pub const MAX: usize = 10;

    pub fn new(tags: Vec<Tag>) -> Result<Self, FieldError> {
        if tags.len() > Self::MAX {
            return Err(FieldError::new(
                "tags",
                format!("must hold at most {} tags", Self::MAX),
            ));
        }
        for (i, tag) in tags.iter().enumerate() {
            if tags[..i].contains(tag) {
                return Err(FieldError::new(
                    format!("tags[{i}]"),
                    format!("repeats the tag '{}'", tag.as_str()),
                ));
            }
        }
        Ok(Self(tags))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<Tag>> for Tags {
    type Error = FieldError;
    fn try_from(tags: Vec<Tag>) -> Result<Self, Self::Error> {
        Self::new(tags)
    }
}

/// Who may see an event: anyone, or only its organizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    /// Whether `viewer` may see an event of `organizer` with this visibility.
    pub fn lets_see(self, organizer: &UserId, viewer: Option<&UserId>) -> bool {
        match self {
            Visibility::Public => true,
            Visibility::Private => viewer == Some(organizer),
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            _ => Err(FieldError::new(field, "must be 'public' or 'private'")),
        }
    }
}

/// How many people may attend: 1 to 100 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Capacity(u32);

impl Capacity {
    pub const MAX: u32 = 100_000;

    pub fn new(field: &str, raw: u64) -> Result<Self, FieldError> {
        if (1..=u64::from(Self::MAX)).contains(&raw) {
            Ok(Self(raw as u32))
        } else {
            Err(FieldError::new(
                field,
                format!("must be an integer from 1 to {}", Self::MAX),
            ))
        }
    }

    pub fn get(&self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for Capacity {
    type Error = FieldError;
    fn try_from(raw: u64) -> Result<Self, Self::Error> {
        Self::new("capacity", raw)
    }
}

impl From<Capacity> for u64 {
    fn from(value: Capacity) -> Self {
        u64::from(value.0)
    }
}

/// When a meetup runs. Always ends after it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    starts_at: Timestamp,
    ends_at: Timestamp,
}

impl Schedule {
    /// A schedule for a new event: it must also start after `now`.
    pub fn upcoming(
        starts_at: Timestamp,
        ends_at: Timestamp,
        now: Timestamp,
    ) -> Result<Self, FieldError> {
        if starts_at <= now {
            return Err(FieldError::new("starts_at", "must be in the future"));
        }
        Self::new(starts_at, ends_at)
    }

    pub fn new(starts_at: Timestamp, ends_at: Timestamp) -> Result<Self, FieldError> {
        if ends_at <= starts_at {
            return Err(FieldError::new("ends_at", "must be after starts_at"));
        }
        Ok(Self { starts_at, ends_at })
    }

    pub fn starts_at(&self) -> Timestamp {
        self.starts_at
    }

    pub fn ends_at(&self) -> Timestamp {
        self.ends_at
    }
}

/// What an organizer asked for; everything the server decides (id, owner, times, version)
/// is added by [`Event::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub title: Title,
    pub description: Description,
    pub schedule: Schedule,
    pub venue: Venue,
    pub tags: Tags,
    pub visibility: Visibility,
    pub capacity: Option<Capacity>,
}

/// Whether a meetup is still on. Cancelled events are kept for history but never listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    #[default]
    Scheduled,
    Cancelled,
}

impl EventStatus {
    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The fields an organizer may change after creation; `None` leaves a field as it is.
/// `capacity: Some(None)` removes the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPatch {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub venue: Option<Venue>,
    pub tags: Option<Tags>,
    pub visibility: Option<Visibility>,
    pub capacity: Option<Option<Capacity>>,
}

/// A meetup as stored, projected and published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: EventId,
    pub title: Title,
    pub description: Description,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub venue: Venue,
    pub tags: Tags,
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    pub organizer_id: UserId,
    /// Absent in items written before cancellation existed: those are scheduled.
    #[serde(default)]
    pub status: EventStatus,
    pub created_at: Timestamp,
    pub version: u64,
}

impl Event {
    pub fn create(draft: EventDraft, organizer_id: UserId, now: Timestamp) -> Self {
        Self {
            id: EventId::generate(),
            title: draft.title,
            description: draft.description,
            starts_at: draft.schedule.starts_at(),
            ends_at: draft.schedule.ends_at(),
            venue: draft.venue,
            tags: draft.tags,
            visibility: draft.visibility,
            capacity: draft.capacity,
            organizer_id,
            status: EventStatus::Scheduled,
            created_at: now,
            version: 1,
        }
    }

    /// The event with `patch` applied, as the next version, and the names of the fields that
    /// changed. A patch that changes nothing gives back the same version and no names.
    pub fn patched(
        &self,
        patch: EventPatch,
        now: Timestamp,
    ) -> Result<(Self, Vec<&'static str>), FieldError> {
        let mut next = self.clone();
        let starts_at = patch.starts_at.unwrap_or(self.starts_at);
        let ends_at = patch.ends_at.unwrap_or(self.ends_at);
        let schedule = if patch.starts_at.is_some_and(|s| s != self.starts_at) {
            Schedule::upcoming(starts_at, ends_at, now)?
        } else {
            Schedule::new(starts_at, ends_at)?
        };
        next.starts_at = schedule.starts_at();
        next.ends_at = schedule.ends_at();
        if let Some(title) = patch.title {
            next.title = title;
        }
        if let Some(description) = patch.description {
            next.description = description;
        }
        if let Some(venue) = patch.venue {
            next.venue = venue;
        }
        if let Some(tags) = patch.tags {
            next.tags = tags;
        }
        if let Some(visibility) = patch.visibility {
            next.visibility = visibility;
        }
        if let Some(capacity) = patch.capacity {
            next.capacity = capacity;
        }
        let changed: Vec<&'static str> = [
            ("title", next.title != self.title),
            ("description", next.description != self.description),
            ("starts_at", next.starts_at != self.starts_at),
            ("ends_at", next.ends_at != self.ends_at),
            ("venue", next.venue != self.venue),
            ("tags", next.tags != self.tags),
            ("visibility", next.visibility != self.visibility),
            ("capacity", next.capacity != self.capacity),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        if !changed.is_empty() {
            next.version = self.version + 1;
        }
        Ok((next, changed))
    }

    /// The event as cancelled, as the next version.
    pub fn cancelled(&self) -> Self {
        let mut next = self.clone();
        next.status = EventStatus::Cancelled;
        next.version = self.version + 1;
        next
    }

    pub fn is_cancelled(&self) -> bool {
        self.status == EventStatus::Cancelled
    }

    /// Whether `viewer` may see this event at all. Private events are the organizer's alone;
    /// everyone else gets the same answer as for an id that does not exist.
    pub fn is_visible_to(&self, viewer: Option<&UserId>) -> bool {
        self.visibility.lets_see(&self.organizer_id, viewer)
    }

    /// Listed in GET /events (and its indexes): public and not cancelled.
    pub fn is_listed_publicly(&self) -> bool {
        self.visibility == Visibility::Public && self.status == EventStatus::Scheduled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> Timestamp {
        Timestamp::parse("t", raw).unwrap()
    }

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(
            Title::parse("title", "  Rust night ").unwrap().as_str(),
            "Rust night"
        );
        assert_eq!(Title::parse("title", "   ").unwrap_err().field, "title");
        let long = "x".repeat(Title::MAX_CHARS + 1);
        assert!(Title::parse("title", &long).is_err());
        assert!(Title::parse("title", &"é".repeat(Title::MAX_CHARS)).is_ok());
    }

    #[test]
    fn description_may_be_empty_but_not_hold_control_characters() {
        assert!(Description::parse("description", "").is_ok());
        assert!(Description::parse("description", "line one\nline two").is_ok());
        assert!(Description::parse("description", "bell\u{7}").is_err());
    }

    #[test]
    fn tags_must_be_lowercase_slugs() {
        for good in ["rust", "aws-lambda", "web3", "a"] {
            assert!(Tag::parse("tags[0]", good).is_ok(), "{good}");
        }
        for bad in ["Rust", "-rust", "rust-", "a--b", "has space", "", "ünïcode"] {
            assert!(Tag::parse("tags[0]", bad).is_err(), "{bad}");
        }
        assert!(Tag::parse("tags[0]", &"a".repeat(33)).is_err());
    }

    #[test]
    fn at_most_ten_distinct_tags_are_allowed() {
        let tag = |i: usize| Tag::parse("t", &format!("t{i}")).unwrap();
        assert!(Tags::new((0..10).map(tag).collect()).is_ok());
        assert_eq!(
            Tags::new((0..11).map(tag).collect()).unwrap_err().field,
            "tags"
        );
        let repeated = Tags::new(vec![tag(1), tag(2), tag(1)]).unwrap_err();
        assert_eq!(repeated.field, "tags[2]");
    }

    #[test]
    fn capacity_is_between_one_and_the_maximum() {
        assert!(Capacity::new("capacity", 0).is_err());
        assert_eq!(Capacity::new("capacity", 1).unwrap().get(), 1);
        assert!(Capacity::new("capacity", u64::from(Capacity::MAX) + 1).is_err());
    }

    #[test]
    fn a_schedule_must_end_after_it_starts() {
        let error =
            Schedule::new(at("2027-01-01T10:00:00Z"), at("2027-01-01T10:00:00Z")).unwrap_err();
        assert_eq!(error.field, "ends_at");
    }

    #[test]
    fn a_new_event_must_start_in_the_future() {
        let now = at("2027-01-01T10:00:00Z");
        let error = Schedule::upcoming(at("2027-01-01T09:00:00Z"), at("2027-01-01T11:00:00Z"), now)
            .unwrap_err();
        assert_eq!(error.field, "starts_at");
    }

    #[test]
    fn a_private_event_is_visible_only_to_its_organizer() {
        let organizer = UserId::parse("sub", "user-1").unwrap();
        let stranger = UserId::parse("sub", "user-2").unwrap();
        let mut event = sample_event(organizer.clone());
        event.visibility = Visibility::Private;
        assert!(event.is_visible_to(Some(&organizer)));
        assert!(!event.is_visible_to(Some(&stranger)));
        assert!(!event.is_visible_to(None));
    }

    #[test]
    fn a_patch_bumps_the_version_and_names_what_changed() {
        let event = sample_event(UserId::parse("sub", "u").unwrap());
        let patch = EventPatch {
            venue: Some(Venue::parse("venue", "Library").unwrap()),
            title: Some(event.title.clone()),
            ..Default::default()
        };

        let (next, changed) = event.patched(patch, at("2026-12-01T00:00:00Z")).unwrap();

        assert_eq!(changed, ["venue"]);
        assert_eq!(next.version, event.version + 1);
        let (same, nothing) = next
            .patched(EventPatch::default(), at("2026-12-01T00:00:00Z"))
            .unwrap();
        assert!(nothing.is_empty());
        assert_eq!(same.version, next.version);
    }

    #[test]
    fn a_patch_keeps_the_schedule_valid() {
        let event = sample_event(UserId::parse("sub", "u").unwrap());
        let now = at("2026-12-01T00:00:00Z");
        let backwards = EventPatch {
            ends_at: Some(at("2026-12-31T00:00:00Z")),
            ..Default::default()
        };
        let into_the_past = EventPatch {
            starts_at: Some(at("2026-11-01T00:00:00Z")),
            ..Default::default()
        };

        assert_eq!(event.patched(backwards, now).unwrap_err().field, "ends_at");
        assert_eq!(
            event.patched(into_the_past, now).unwrap_err().field,
            "starts_at"
        );
    }

    #[test]
    fn a_cancelled_event_is_not_listed() {
        let event = sample_event(UserId::parse("sub", "u").unwrap());
        let cancelled = event.cancelled();
        assert!(event.is_listed_publicly());
        assert!(!cancelled.is_listed_publicly());
        assert_eq!(cancelled.version, event.version + 1);
    }

    #[test]
    fn an_event_survives_a_json_round_trip() {
        let event = sample_event(UserId::parse("sub", "user-1").unwrap());
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }

    #[test]
    fn an_event_is_written_as_its_fields_plain_values_and_read_back_checked() {
        let event = sample_event(UserId::parse("sub", "user-1").unwrap());

        let json: serde_json::Value = serde_json::to_value(&event).unwrap();
        let mut padded = json.clone();
        padded["title"] = serde_json::json!("  Rust night \n");
        let mut bad_tag = json.clone();
        bad_tag["tags"] = serde_json::json!(["Rust"]);

        assert_eq!(json["id"], event.id.to_string());
        assert_eq!(json["organizer_id"], "user-1");
        assert_eq!(json["title"], "Rust night");
        assert_eq!(json["tags"], serde_json::json!(["rust"]));
        assert_eq!(json["capacity"], 50);
        let read: Event = serde_json::from_value(padded).unwrap();
        assert_eq!(read.title.as_str(), "Rust night");
        assert!(serde_json::from_value::<Event>(bad_tag).is_err());
    }

    fn sample_event(organizer: UserId) -> Event {
        let draft = EventDraft {
            title: Title::parse("title", "Rust night").unwrap(),
            description: Description::parse("description", "Talks").unwrap(),
            schedule: Schedule::new(at("2027-01-01T18:00:00Z"), at("2027-01-01T21:00:00Z"))
                .unwrap(),
            venue: Venue::parse("venue", "Town hall").unwrap(),
            tags: Tags::new(vec![Tag::parse("t", "rust").unwrap()]).unwrap(),
            visibility: Visibility::Public,
            capacity: Some(Capacity::new("capacity", 50).unwrap()),
        };
        Event::create(draft, organizer, at("2026-12-01T00:00:00Z"))
    }
}
