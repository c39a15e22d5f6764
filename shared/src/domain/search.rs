//! Search terms and queries: how text becomes index keys, and how a query picks its index.
//!
//! Matching is case- and accent-insensitive (`Café` finds `cafe`), on whole words, with a
//! prefix match on the query's last word (`rus` finds `rust`). Each listed event is filed
//! under a handful of partitions: each of its words at its *home* (the word's prefix at the
//! longest of [`PREFIX_LEVELS`] it reaches, or the whole word if shorter than the first), the
//! prefixes of its short-text words at every level, each tag, and its organizer; entries are
//! sorted by `starts_at#id`. A query reads the one most selective partition in start order and
//! checks the rest of its conditions on each entry. A query no partition narrows (dates alone,
//! a last word under three characters, stop words only) reads the read model's listing of
//! every upcoming public event instead, and checks each event ([`SearchQuery::admits`]): the
//! index keeps no partition of every event, the listing already being one.
//!
//! A word's home is one of its own prefix partitions, so a title word costs no entry beyond
//! its prefixes: before [`SEARCH_LAYOUT`] 2 every word also had a `TERM#` partition of its own,
//! 26 entries per event of the benchmarks' fixture where homes make 20 (BENCHMARKS.md, "Words
//! filed at home"). A home is shared by the words it prefixes, so a query checks the exact word.
//!
//! [`STOP_WORDS`] ("and", "the", ...) are not filed anywhere, as search engines leave them out
//! of their indexes: "and" alone had an entry for nearly every event. They stay among an
//! entry's words, so a query naming one still finds exactly what it did; it only never reads a
//! partition a stop word would have been filed in (BENCHMARKS.md, "Stop words and the
//! organizer first").

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{Event, FieldError, Tag, Timestamp, UserId};

/// The prefix lengths a short-text word is filed under. Shorter than the first, a prefix would
/// match nearly everything; a query prefix between two levels (or past the last) reads the
/// partition of the level below it and is matched by checking. Every length from 3 to 8 was
/// filed before: an event had one entry per length of each word (34 for the benchmarks'
/// fixture, where three levels make 25, one BatchWriteItem), and those older entries are in
/// the levels' partitions too, so queries find them until the event's next version.
pub const PREFIX_LEVELS: [usize; 3] = [3, 5, 8];
/// How entries are laid out: a release that files events under other partitions bumps it, so
/// the rebuild (and each event's next version) files every event again, and the manifests
/// say which layout their entries are in. 1 (implicit, no attribute): every word under
/// `TERM#<word>`. 2: every word at its home. 3: stop words filed nowhere; entries without the
/// organizer (read from `ORG#` only) and with the tags among the words; no `ALL` partition
/// (the listing serves those queries).
pub const SEARCH_LAYOUT: u32 = 3;
/// Words too common to be worth a partition: short English function words, sorted. Kept
/// short on purpose: a query prefix that begins one of them ("the", "fro") cannot read its
/// prefix partition (an event whose only such word is the stop word is not filed there), and
/// falls back to a broader one. Words a meetup may be about ("it", "go", "c") are not here.
pub const STOP_WORDS: [&str; 18] = [
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "of", "on", "or",
    "the", "to", "with",
];
/// Distinct words indexed per event (title, venue and tags first, then description).
pub const MAX_WORDS: usize = 60;
/// Words of a query.
pub const MAX_QUERY_WORDS: usize = 8;

/// Lowercase, accents removed, split into words of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

fn prefix_partition(prefix: &str) -> String {
    format!("PREFIX#{prefix}")
}

/// The prefix partition at the longest level `text` reaches; none below the first level.
fn longest_prefix(text: &str) -> Option<String> {
    prefixes(text).last().map(|p| prefix_partition(&p))
}

/// The partition a whole word is found in: its longest prefix partition, or the word itself
/// (`TERM#`) when it is shorter than the first level.
fn home(word: &str) -> String {
    longest_prefix(word).unwrap_or_else(|| format!("TERM#{word}"))
}

/// The text a partition key indexes, without its kind: the longer, the fewer events share it.
fn indexed_length(partition: &str) -> usize {
    partition
        .split_once('#')
        .map_or(0, |(_, text)| text.chars().count())
}

fn prefixes(word: &str) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<char> = word.chars().collect();
    let length = chars.len();
    let levels = PREFIX_LEVELS.into_iter().filter(move |n| *n <= length);
    levels.map(move |n| chars[..n].iter().collect())
}

/// What an event is filed under in the search index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchEntry {
    /// Partition keys (`PREFIX#..`, `TERM#..` for words under three characters, `TAG#..`,
    /// `ORG#..`).
    pub partitions: BTreeSet<String>,
    /// Sort key inside every partition.
    pub sort_key: String,
    /// Every indexed word (stop words too), for checking multi-word queries.
    pub words: BTreeSet<String>,
    /// The event's tags, for checking a query's tag outside `TAG#`.
    pub tags: Vec<String>,
}

impl SearchEntry {
    /// The entry for `event`, or `None` if it must not be findable (private or cancelled).
    pub fn of(event: &Event) -> Option<Self> {
        if !event.is_listed_publicly() {
            return None;
        }
        let short_text: Vec<String> = words(event.title.as_str())
            .into_iter()
            .chain(words(event.venue.as_str()))
            .chain(event.tags.iter().flat_map(|t| words(t.as_str())))
            .collect();
        let mut all_words: BTreeSet<String> = BTreeSet::new();
        let mut partitions: BTreeSet<String> = BTreeSet::new();
        for word in &short_text {
            if all_words.len() >= MAX_WORDS {
                break;
            }
            all_words.insert(word.clone());
            if !is_stop_word(word) {
                partitions.extend(prefixes(word).map(|p| prefix_partition(&p)));
            }
        }
        for word in words(event.description.as_str()) {
            if all_words.len() >= MAX_WORDS {
                break;
            }
            all_words.insert(word);
        }
        // A short-text word's home is among its prefixes already; a description word (or one
        // under three characters) adds its own.
        partitions.extend(
            all_words
                .iter()
                .filter(|w| !is_stop_word(w))
                .map(|w| home(w)),
        );
        partitions.extend(event.tags.iter().map(|t| format!("TAG#{}", t.as_str())));
        partitions.insert(format!("ORG#{}", event.organizer_id));
        Some(Self {
            partitions,
            sort_key: format!("{}#{}", event.starts_at, event.id),
            words: all_words,
            tags: event.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        })
    }
}

/// A parsed search: every condition is optional; all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Whole words that must all appear.
    pub words: Vec<String>,
    /// The last query word: some indexed word must start with it.
    pub prefix: Option<String>,
    pub tag: Option<Tag>,
    pub organizer: Option<UserId>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl SearchQuery {
    pub fn parse_q(raw: &str) -> Result<(Vec<String>, Option<String>), FieldError> {
        if raw.chars().count() > 200 {
            return Err(FieldError::new("q", "must be at most 200 characters"));
        }
        let mut words = words(raw);
        if words.len() > MAX_QUERY_WORDS {
            return Err(FieldError::new(
                "q",
                format!("must have at most {MAX_QUERY_WORDS} words"),
            ));
        }
        let prefix = words.pop();
        Ok((words, prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
            && self.prefix.is_none()
            && self.tag.is_none()
            && self.organizer.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }

    /// The partition to read. The organizer's, when the query names one: an organizer has
    /// few events, and entries elsewhere do not say whose they are (a fifth of an entry's
    /// bytes). Otherwise the most selective condition that has one: of the words' homes and
    /// the prefix's level, the one indexing the most characters (the first on a tie), so a
    /// query `a rust meetup` reads `PREFIX#meetu`, not `TERM#a`. A stop word is filed nowhere,
    /// and a prefix that begins one (`the`) would miss the events it matches through that stop
    /// word: neither is a candidate. None when no condition has a partition: the query reads
    /// the listing.
    pub fn partition(&self) -> Option<String> {
        if let Some(organizer) = &self.organizer {
            return Some(format!("ORG#{organizer}"));
        }
        let words = self
            .words
            .iter()
            .filter(|w| !is_stop_word(w))
            .map(|w| home(w));
        let prefix = self
            .prefix
            .as_deref()
            .filter(|p| !STOP_WORDS.iter().any(|s| s.starts_with(p)))
            .and_then(longest_prefix);
        let mut best: Option<String> = None;
        for candidate in words.chain(prefix) {
            if best
                .as_deref()
                .is_none_or(|b| indexed_length(&candidate) > indexed_length(b))
            {
                best = Some(candidate);
            }
        }
        best.or_else(|| self.tag.as_ref().map(|tag| format!("TAG#{}", tag.as_str())))
    }

    /// Whether `event` meets every condition but the dates, from its own words: for a query
    /// that reads the listing ([`Self::partition`] is None), whose events the index did not
    /// check. Only listed events can.
    pub fn admits(&self, event: &Event) -> bool {
        let organizer = self
            .organizer
            .as_ref()
            .is_none_or(|o| *o == event.organizer_id);
        if self.words.is_empty() && self.prefix.is_none() && self.tag.is_none() {
            // Nothing to check against its words: no need to work them out.
            return organizer && event.is_listed_publicly();
        }
        organizer
            && SearchEntry::of(event).is_some_and(|entry| self.matches(&entry.words, &entry.tags))
    }

    /// Whether an entry read from [`Self::partition`] meets every condition. The organizer
    /// is not among them: a query naming one reads only the organizer's partition.
    pub fn matches(&self, words: &BTreeSet<String>, tags: &[String]) -> bool {
        self.words.iter().all(|w| words.contains(w))
            && self
                .prefix
                .as_ref()
                .is_none_or(|p| words.iter().any(|w| w.starts_with(p.as_str())))
            && self
                .tag
                .as_ref()
                .is_none_or(|t| tags.iter().any(|x| x == t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Description, EventDraft, Schedule, Tags, Title, Venue, Visibility};

    fn event(title: &str, description: &str, tags: &[&str], visibility: Visibility) -> Event {
        let now = Timestamp::now();
        let draft = EventDraft {
            title: Title::parse("title", title).unwrap(),
            description: Description::parse("d", description).unwrap(),
            schedule: Schedule::upcoming(now.plus_seconds(60), now.plus_seconds(120), now).unwrap(),
            venue: Venue::parse("venue", "Café Müller").unwrap(),
            tags: Tags::new(tags.iter().map(|t| Tag::parse("t", t).unwrap()).collect()).unwrap(),
            visibility,
            capacity: None,
        };
        Event::create(draft, UserId::parse("sub", "org-1").unwrap(), now)
    }

    /// The query for `q` as typed, with no other condition.
    fn typed(q: &str) -> SearchQuery {
        let (words, prefix) = SearchQuery::parse_q(q).unwrap();
        SearchQuery {
            words,
            prefix,
            ..Default::default()
        }
    }

    #[test]
    fn words_are_case_and_accent_insensitive() {
        assert_eq!(
            words("Crème BRÛLÉE, naïve-café!"),
            ["creme", "brulee", "naive", "cafe"]
        );
    }

    #[test]
    fn an_event_is_filed_under_its_words_homes_prefixes_tags_and_organizer() {
        let entry = SearchEntry::of(&event(
            "Rust Night",
            "Talks about async AI",
            &["systems"],
            Visibility::Public,
        ))
        .unwrap();

        for key in [
            "PREFIX#talks",
            "PREFIX#async",
            "TERM#ai",
            "PREFIX#caf",
            "PREFIX#rus",
            "PREFIX#nig",
            "PREFIX#night",
            "PREFIX#mul",
            "PREFIX#mulle",
            "TAG#systems",
            "ORG#org-1",
        ] {
            assert!(
                entry.partitions.contains(key),
                "{key} in {:?}",
                entry.partitions
            );
        }
        assert!(
            !entry.partitions.contains("PREFIX#ru"),
            "prefixes start at three characters"
        );
        assert!(
            !entry.partitions.contains("PREFIX#rust") && !entry.partitions.contains("PREFIX#mull"),
            "prefixes are filed only at their levels"
        );
        assert!(
            !entry.partitions.contains("PREFIX#tal"),
            "description words are filed at their home only"
        );
        assert_eq!(
            entry
                .partitions
                .iter()
                .filter(|p| p.starts_with("TERM#"))
                .collect::<Vec<_>>(),
            ["TERM#ai"],
            "only a word too short for a prefix has a partition of its own"
        );
    }

    #[test]
    fn a_whole_word_is_read_from_its_home_and_checked_exactly() {
        let entry = SearchEntry::of(&event("Rust Night", "", &[], Visibility::Public)).unwrap();
        let query = |word: &str| SearchQuery {
            words: vec![word.to_owned(), "night".to_owned()],
            ..Default::default()
        };

        assert_eq!(query("rust").partition().as_deref(), Some("PREFIX#night"));
        assert!(
            entry
                .partitions
                .contains(&query("rust").partition().unwrap())
        );
        assert!(query("rust").matches(&entry.words, &[]));
        assert_eq!(query("rusty").partition().as_deref(), Some("PREFIX#rusty"));
        assert!(
            !query("rus").matches(&entry.words, &[]),
            "a home holds every word it prefixes: the word itself is checked"
        );
    }

    #[test]
    fn a_query_reads_the_partition_indexing_the_most_characters() {
        let query = typed("a rust meetups");
        let short = SearchQuery {
            tag: Some(Tag::parse("tag", "rust").unwrap()),
            ..typed("go ai")
        };

        assert_eq!(query.partition().as_deref(), Some("PREFIX#meetu"));
        assert_eq!(short.partition().as_deref(), Some("TERM#go"));
    }

    #[test]
    fn private_and_cancelled_events_are_not_indexed() {
        assert!(SearchEntry::of(&event("Secret", "", &[], Visibility::Private)).is_none());
        assert!(SearchEntry::of(&event("Off", "", &[], Visibility::Public).cancelled()).is_none());
    }

    #[test]
    fn a_query_reads_its_most_selective_partition_and_checks_the_rest() {
        let query = typed("Café rus");
        let entry = SearchEntry::of(&event("Rust Night", "", &[], Visibility::Public)).unwrap();

        assert_eq!(
            query.partition().as_deref(),
            Some("PREFIX#caf"),
            "the word's home before the prefix's"
        );
        assert!(query.matches(&entry.words, &[]));
        let other = SearchQuery {
            words: vec!["cafe".into()],
            prefix: Some("pyth".into()),
            ..Default::default()
        };
        assert!(!other.matches(&entry.words, &[]));
    }

    #[test]
    fn a_short_or_long_last_word_still_finds_by_checking() {
        let entry = SearchEntry::of(&event(
            "Internationalization workshop",
            "",
            &[],
            Visibility::Public,
        ))
        .unwrap();
        let long = SearchQuery {
            prefix: Some("internationali".into()),
            ..Default::default()
        };
        let short = SearchQuery {
            prefix: Some("in".into()),
            ..Default::default()
        };

        assert_eq!(long.partition().as_deref(), Some("PREFIX#internat"));
        let between = SearchQuery {
            prefix: Some("internatio".into()),
            ..Default::default()
        };
        assert_eq!(between.partition().as_deref(), Some("PREFIX#internat"));
        let between = SearchQuery {
            prefix: Some("inter".into()),
            ..Default::default()
        };
        assert_eq!(between.partition().as_deref(), Some("PREFIX#inter"));
        assert!(entry.partitions.contains("PREFIX#inter"));
        let between = SearchQuery {
            prefix: Some("inte".into()),
            ..Default::default()
        };
        assert_eq!(between.partition().as_deref(), Some("PREFIX#int"));
        assert!(between.matches(&entry.words, &[]));
        assert!(long.matches(&entry.words, &[]));
        assert_eq!(short.partition(), None);
        assert!(short.matches(&entry.words, &[]));
    }

    #[test]
    fn stop_words_are_filed_nowhere_but_stay_among_the_words() {
        let entry = SearchEntry::of(&event(
            "The Rust and Go night",
            "Pizza for all",
            &[],
            Visibility::Public,
        ))
        .unwrap();

        for stop in ["PREFIX#the", "PREFIX#and", "PREFIX#for"] {
            assert!(!entry.partitions.contains(stop), "{stop} is a stop word's");
        }
        assert!(entry.partitions.contains("TERM#go") && entry.partitions.contains("PREFIX#all"));
        for word in ["the", "and", "for"] {
            assert!(entry.words.contains(word), "{word} is still checked");
        }
    }

    #[test]
    fn the_stop_words_are_sorted_as_their_binary_search_needs() {
        assert!(STOP_WORDS.is_sorted());
        assert!(STOP_WORDS.iter().all(|w| is_stop_word(w)));
        for topic in ["it", "go", "c"] {
            assert!(!is_stop_word(topic), "{topic} is a meetup's topic");
        }
    }

    #[test]
    fn a_query_never_reads_a_partition_a_stop_word_would_be_filed_in() {
        let entry = SearchEntry::of(&event("The Rust night", "", &[], Visibility::Public)).unwrap();

        // A stop word's home, or a prefix that begins one, would miss this event: "the" is its
        // only word beginning "the".
        assert_eq!(typed("rust the").partition().as_deref(), Some("PREFIX#rus"));
        assert_eq!(typed("the").partition(), None);
        assert_eq!(typed("the ru").partition(), None);
        assert!(typed("the ru").matches(&entry.words, &[]));
        assert_eq!(
            typed("andr").partition().as_deref(),
            Some("PREFIX#and"),
            "no stop word begins with andr"
        );
        let tagged = SearchQuery {
            tag: Some(Tag::parse("tag", "rust").unwrap()),
            ..typed("the")
        };
        assert_eq!(tagged.partition().as_deref(), Some("TAG#rust"));
    }

    #[test]
    fn a_query_naming_an_organizer_reads_only_the_organizers_partition() {
        let entry =
            SearchEntry::of(&event("Rust Night", "", &["rust"], Visibility::Public)).unwrap();
        let query = SearchQuery {
            organizer: Some(UserId::parse("organizer", "org-1").unwrap()),
            tag: Some(Tag::parse("tag", "rust").unwrap()),
            ..typed("rust nig")
        };

        assert_eq!(query.partition().as_deref(), Some("ORG#org-1"));
        assert!(entry.partitions.contains(&query.partition().unwrap()));
        assert!(query.matches(&entry.words, &entry.tags));
        assert!(
            !query.matches(&entry.words, &[]),
            "its tag is still checked"
        );
    }

    #[test]
    fn a_query_reading_the_listing_admits_only_listed_events_meeting_its_conditions() {
        let rust = event("The Rust night", "Talks", &["rust"], Visibility::Public);
        let private = event("Rust", "", &[], Visibility::Private);
        let dates_only = SearchQuery::default();
        let short = typed("ru");
        let stop_words = typed("the ta");

        assert!(dates_only.admits(&rust) && !dates_only.admits(&private));
        assert!(short.admits(&rust) && !short.admits(&private));
        assert!(
            stop_words.admits(&rust),
            "a stop word checked, the prefix among all words"
        );
        assert!(!typed("and ru").admits(&rust));
        let tagged = SearchQuery {
            tag: Some(Tag::parse("tag", "go").unwrap()),
            ..typed("ru")
        };
        assert!(!tagged.admits(&rust));
    }

    #[test]
    fn an_overlong_query_names_q() {
        assert_eq!(
            SearchQuery::parse_q(&"word ".repeat(9)).unwrap_err().field,
            "q"
        );
    }
}
