//! The notification mails. Every one carries the recipient's unsubscribe link.

use evently_shared::domain::Event;
use evently_shared::mail::{escape_html, header_safe};
use evently_shared::ports::Mail;

/// Why someone is being mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NewEvent,
    Changed,
    Cancelled,
}

pub fn compose(reason: Reason, event: &Event, to: &str, unsubscribe: &str) -> Mail {
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
    let when = format!("{} to {}", event.starts_at, event.ends_at);
    let venue = event.venue.as_str();
    let text = format!(
        "{lead}:\n\n{title}\nWhen: {when}\nWhere: {venue}\n\n\
         Stop these mails: {unsubscribe}\n"
    );
    let html = format!(
        "<!doctype html><html lang=\"en\"><body>\
         <p>{lead}:</p><h2>{}</h2><p>When: {when}<br>Where: {}</p>\
         <p style=\"font-size:12px;color:#666\"><a href=\"{}\">Stop these mails</a></p>\
         </body></html>",
        escape_html(title),
        escape_html(venue),
        escape_html(unsubscribe),
    );
    Mail {
        to: to.to_owned(),
        subject: header_safe(&subject),
        text,
        html,
    }
}
