//! The welcome mail: one template from `templates/`, filled in by the mail service for each
//! recipient. Each part has its own placeholder, because each needs the name made safe in its
//! own way (the mail service escapes nothing).

use evently_shared::domain::User;
use evently_shared::mail::{escape_html, header_safe};
use evently_shared::ports::{Addressed, MailTemplate};

const SUBJECT: &str = include_str!("../templates/subject.txt");
const TEXT: &str = include_str!("../templates/welcome.txt");
const HTML: &str = include_str!("../templates/welcome.html");

/// Made once per process: a batch or round sends it by reference.
pub fn template() -> &'static MailTemplate {
    static TEMPLATE: std::sync::LazyLock<MailTemplate> =
        std::sync::LazyLock::new(|| MailTemplate::new(SUBJECT, TEXT, HTML));
    &TEMPLATE
}

/// `user` as a recipient of [`template`].
pub fn addressed(user: &User) -> Addressed {
    let name = user.display_name.as_str();
    Addressed {
        to: user.email.as_str().to_owned(),
        values: vec![
            ("name_in_subject", header_safe(name)),
            ("name", name.to_owned()),
            ("name_html", escape_html(name)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{DisplayName, Email, Timestamp};

    use evently_shared::mail::render;
    use evently_shared::ports::Mail;

    use super::*;

    fn welcome(user: &User) -> Mail {
        render(template(), &addressed(user))
    }

    fn user(name: &str) -> User {
        User::create(
            Email::parse("email", "ada@example.com").unwrap(),
            DisplayName::parse("display_name", name).unwrap(),
            Timestamp::now(),
        )
    }

    #[test]
    fn the_mail_greets_the_user_by_name_in_text_and_html() {
        let mail = welcome(&user("Ada"));

        assert_eq!(mail.to, "ada@example.com");
        assert_eq!(mail.subject, "Welcome to Evently, Ada");
        assert!(mail.text.starts_with("Hi Ada,"));
        assert!(mail.html.contains("<p>Hi Ada,</p>"));
        for part in [&mail.subject, &mail.text, &mail.html] {
            assert!(
                !part.contains("{{"),
                "a placeholder without a value: {part}"
            );
        }
    }

    #[test]
    fn the_display_name_is_escaped_in_html() {
        let mail = welcome(&user("<script>alert('x')</script> & \"co\""));

        assert!(!mail.html.contains("<script>"));
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;")
        );
        assert!(
            mail.text.contains("<script>"),
            "plain text needs no escaping"
        );
    }
}
