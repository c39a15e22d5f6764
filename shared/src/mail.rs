//! Small helpers for composing mail.

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A subject is one header line: control characters (a newline would start a new header)
/// are dropped.
pub fn header_safe(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).collect()
}

/// `template` with each `{{name}}` replaced by the recipient's value, as the mail service
/// renders it (no escaping: the values are made safe for their part beforehand). For tests and
/// fakes; in production the mail service renders.
pub fn render(
    template: &crate::ports::MailTemplate,
    to: &crate::ports::Addressed,
) -> crate::ports::Mail {
    // One pass: a value that holds `{{...}}` is not filled in again.
    let fill = |part: &str| {
        let mut out = String::with_capacity(part.len());
        let mut rest = part;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            match after.find("}}") {
                Some(close) => {
                    let name = &after[..close];
                    match to.values.iter().find(|(n, _)| *n == name) {
                        Some((_, value)) => out.push_str(value),
                        None => out.push_str(&rest[open..open + 2 + close + 2]),
                    }
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    };
    crate::ports::Mail {
        to: to.to.clone(),
        subject: fill(&template.subject),
        text: fill(&template.text),
        html: fill(&template.html),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_fills_every_placeholder_of_every_part() {
        let template = crate::ports::MailTemplate {
            subject: "Hi {{a}}".into(),
            text: "{{a}} and {{b}}".into(),
            html: "<p>{{b}}</p>".into(),
        };
        let to = crate::ports::Addressed {
            to: "x@example.com".into(),
            values: vec![("a", "A".into()), ("b", "B".into())],
        };

        let mail = render(&template, &to);

        assert_eq!(
            (
                mail.to.as_str(),
                mail.subject.as_str(),
                mail.text.as_str(),
                mail.html.as_str()
            ),
            ("x@example.com", "Hi A", "A and B", "<p>B</p>")
        );
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_subject_cannot_carry_a_second_header() {
        assert_eq!(
            header_safe("Hi\r\nBcc: x@example.com"),
            "HiBcc: x@example.com"
        );
    }
}
