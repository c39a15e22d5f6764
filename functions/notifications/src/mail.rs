//! The notification mail: one template from `templates/` for every reason, filled in by the
//! mail service for each recipient, so a batch's mails go out in one bulk send whatever their
//! events. Every mail carries the recipient's unsubscribe link. A value that appears in more
//! than one part has a placeholder per part, because each part needs it made safe in its own
//! way (the mail service escapes nothing).

use evently_shared::domain::Event;
use evently_shared::mail::{escape_html, header_safe};
use evently_shared::ports::{Addressed, MailTemplate};

const SUBJECT: &str = include_str!("../templates/subject.txt");
const TEXT: &str = include_str!("../templates/notification.txt");
const HTML: &str = include_str!("../templates/notification.html");

/// Why someone is being mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NewEvent,
    Changed,
    Cancelled,
}

/// Made once per process: a batch or round sends it by reference.
pub fn template() -> &'static MailTemplate {
    static TEMPLATE: std::sync::LazyLock<MailTemplate> =
        std::sync::LazyLock::new(|| MailTemplate::new(SUBJECT, TEXT, HTML));
    &TEMPLATE
}

/// The values of one event's mail that every recipient shares, made once per event.
#[derive(Debug, Clone)]
pub struct About(Vec<(&'static str, String)>);

impl About {
    pub fn new(reason: Reason, event: &Event) -> Self {
        let title = event.title.as_str();
        let (subject, lead) = match reason {
            Reason::NewEvent => (format!("New meetup: {title}"), "A new meetup you may like"),
            Reason::Changed => (
                format!("Changed: {title}"),
                "A meetup you are going to has changed",
            ),
            Reason::Cancelled => (
                format!("Cancelled: {title}"),
                "A meetup you are going to is cancelled",
            ),
        };
        let venue = event.venue.as_str();
        Self(vec![
            ("subject", header_safe(&subject)),
            ("lead", lead.to_owned()),
            ("title", title.to_owned()),
            ("title_html", escape_html(title)),
            ("when", format!("{} to {}", event.starts_at, event.ends_at)),
            ("venue", venue.to_owned()),
            ("venue_html", escape_html(venue)),
        ])
    }

    /// The mail to `to`, whose unsubscribe link is `unsubscribe`.
    pub fn to(&self, to: &str, unsubscribe: &str) -> Addressed {
        let mut values = Vec::with_capacity(self.0.len() + 2);
        values.extend_from_slice(&self.0);
        values.push(("unsubscribe", unsubscribe.to_owned()));
        values.push(("unsubscribe_html", escape_html(unsubscribe)));
        Addressed {
            to: to.to_owned(),
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{
        Description, EventDraft, Schedule, Tags, Timestamp, Title, UserId, Venue, Visibility,
    };
    use evently_shared::mail::render;
    use evently_shared::ports::Mail;

    use super::*;

    fn event(title: &str, venue: &str) -> Event {
        let now = Timestamp::now();
        let draft = EventDraft {
            title: Title::parse("title", title).unwrap(),
            description: Description::parse("d", "").unwrap(),
            schedule: Schedule::upcoming(now.plus_seconds(86_400), now.plus_seconds(90_000), now)
                .unwrap(),
            venue: Venue::parse("venue", venue).unwrap(),
            tags: Tags::new(Vec::new()).unwrap(),
            visibility: Visibility::Public,
            capacity: None,
        };
        Event::create(draft, UserId::parse("organizer", "org-1").unwrap(), now)
    }

    fn mail(reason: Reason, event: &Event, link: &str) -> Mail {
        render(
            template(),
            &About::new(reason, event).to("fan@example.com", link),
        )
    }

    #[test]
    fn a_new_event_mail_names_the_event_its_time_and_place_and_the_unsubscribe_link() {
        let event = event("Rust night", "Hall 1");

        let mail = mail(Reason::NewEvent, &event, "https://x.test/u?token=t1");

        assert_eq!(mail.to, "fan@example.com");
        assert_eq!(mail.subject, "New meetup: Rust night");
        let when = format!("When: {} to {}", event.starts_at, event.ends_at);
        for part in [&mail.text, &mail.html] {
            assert!(part.contains("Rust night"), "{part}");
            assert!(part.contains(&when), "{part}");
            assert!(part.contains("Hall 1"), "{part}");
            assert!(part.contains("https://x.test/u?token=t1"), "{part}");
            assert!(!part.contains("{{"), "every placeholder is filled: {part}");
        }
        assert!(mail.text.starts_with("A new meetup you may like:"));
    }

    #[test]
    fn each_reason_has_its_own_subject_and_lead() {
        let event = event("Rust night", "Hall 1");

        let changed = mail(Reason::Changed, &event, "l");
        let cancelled = mail(Reason::Cancelled, &event, "l");

        assert_eq!(changed.subject, "Changed: Rust night");
        assert!(
            changed
                .text
                .starts_with("A meetup you are going to has changed:")
        );
        assert_eq!(cancelled.subject, "Cancelled: Rust night");
        assert!(
            cancelled
                .html
                .contains("A meetup you are going to is cancelled:")
        );
    }

    #[test]
    fn markup_in_the_title_venue_or_link_is_escaped_in_html_only() {
        let event = event("Rust <night>", "A & B");

        let mail = mail(Reason::NewEvent, &event, "https://x.test/u?a=1&token=\"t\"");

        assert!(mail.html.contains("Rust &lt;night&gt;"));
        assert!(mail.html.contains("A &amp; B"));
        assert!(
            mail.html
                .contains("href=\"https://x.test/u?a=1&amp;token=&quot;t&quot;\"")
        );
        assert!(!mail.html.contains("<night>"));
        assert!(mail.text.contains("Rust <night>"));
        assert!(mail.text.contains("A & B"));
    }
}
