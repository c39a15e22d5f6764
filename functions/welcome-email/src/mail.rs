//! The welcome mail, rendered from the templates in `templates/`.

use evently_shared::domain::User;
use evently_shared::mail::{escape_html, header_safe};
use evently_shared::ports::Mail;

const SUBJECT: &str = include_str!("../templates/subject.txt");
const TEXT: &str = include_str!("../templates/welcome.txt");
const HTML: &str = include_str!("../templates/welcome.html");

pub fn welcome(user: &User) -> Mail {
    let name = user.display_name.as_str();
    let subject_name = header_safe(name);
    Mail {
        to: user.email.as_str().to_owned(),
        subject: SUBJECT.trim().replace("{{display_name}}", &subject_name),
        text: TEXT.replace("{{display_name}}", name),
        html: HTML.replace("{{display_name}}", &escape_html(name)),
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{DisplayName, Email, Timestamp};

    use super::*;

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
        assert!(!mail.html.contains("{{"));
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
