//! Who hears about what, and exactly once.
//!
//! - `EventCreated` (public): followers of the organizer and of each of the event's tags.
//! - `EventUpdated` that moves the time or the venue, and `EventCancelled`: every attendee.
//!
//! Audiences are walked in pages of [`PAGE`] recipients. Each recipient's mail is guarded by
//! an idempotency record keyed by (recipient, event, entity version), so a redelivery, a retry
//! after a failure, or a run that stopped at its time budget resumes by skipping everyone
//! already mailed: no recipient is mailed twice and none is skipped. Recipients who turned
//! notifications off are not mailed.

use std::collections::HashSet;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use evently_shared::consumer::{self, Message, MessageError};
use evently_shared::domain::{Event, Timestamp, UserId};
use evently_shared::envelope::DomainEvent;
use evently_shared::idempotency::lease_until;
use evently_shared::ports::{
    Begun, Claim, EventStore, FollowTarget, Follows, Idempotency, MailError, Mailer, Recipient,
    StoreError,
};
use lambda_runtime::Error;

use crate::mail::{Reason, compose};

pub const SCOPE: &str = "notifications";
/// Recipients per page: bounded work between checks of the time budget.
const PAGE: u16 = 25;
/// Stop starting new pages when less than this is left of the invocation (or a quarter of
/// the invocation, for short timeouts).
const RESERVE_MS: i64 = 3_000;
const REMEMBER_SECONDS: i64 = 15 * 24 * 60 * 60;

/// The fields whose change attendees are told about.
const NOTIFIED_CHANGES: &[&str] = &["starts_at", "ends_at", "venue"];

pub struct Notifier<E, F, M, I> {
    pub events: E,
    pub follows: F,
    pub mailer: M,
    pub idempotency: I,
    /// Base of the unsubscribe link; the user's token is appended as `?token=`.
    pub unsubscribe_url: String,
}

enum Audience {
    Followers(Vec<FollowTarget>),
    Attendees,
}

fn retry(error: StoreError) -> MessageError {
    MessageError::Retryable(error.to_string())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<E: EventStore, F: Follows, M: Mailer, I: Idempotency> Notifier<E, F, M, I> {
    pub async fn handle_batch(
        &self,
        event: SqsEvent,
        deadline_ms: i64,
    ) -> Result<SqsBatchResponse, Error> {
        let reserve = RESERVE_MS.min((deadline_ms - now_ms()).max(0) / 4);
        let stop_at = deadline_ms - reserve;
        let lease = lease_until(u64::try_from(deadline_ms).ok());
        consumer::process_batch(event, |message| self.notify(message, stop_at, lease)).await
    }

    /// `stop_at`: no new page starts after this instant (ms since the epoch).
    /// `lease`: when this invocation's idempotency claims lapse (its deadline).
    async fn notify(
        &self,
        message: Message,
        stop_at: i64,
        lease: Timestamp,
    ) -> Result<(), MessageError> {
        let envelope = message.envelope()?;
        let domain = envelope
            .domain_event()
            .map_err(|e| MessageError::Permanent(e.to_string()))?;
        let (event, reason, audience) = match domain {
            DomainEvent::EventCreated(event) if event.is_listed_publicly() => {
                let mut targets = vec![FollowTarget::Organizer(event.organizer_id.clone())];
                targets.extend(event.tags.iter().cloned().map(FollowTarget::Tag));
                (event, Reason::NewEvent, Audience::Followers(targets))
            }
            DomainEvent::EventUpdated(change)
                if change
                    .changed
                    .iter()
                    .any(|c| NOTIFIED_CHANGES.contains(&c.as_str())) =>
            {
                (change.event, Reason::Changed, Audience::Attendees)
            }
            DomainEvent::EventCancelled(event) => (event, Reason::Cancelled, Audience::Attendees),
            _ => {
                tracing::info!(event_type = %envelope.event_type, "nothing to notify; envelope skipped");
                return Ok(());
            }
        };

        let mut seen: HashSet<UserId> = HashSet::new();
        let mut sent = 0usize;
        let mut skipped = 0usize;
        match audience {
            Audience::Followers(targets) => {
                for target in &targets {
                    let mut resume = None;
                    loop {
                        self.check_budget(stop_at)?;
                        let (page, next) = self
                            .follows
                            .followers(target, resume, PAGE)
                            .await
                            .map_err(retry)?;
                        let (s, k) = self
                            .mail_page(&event, reason, page, &mut seen, lease)
                            .await?;
                        (sent, skipped) = (sent + s, skipped + k);
                        match next {
                            Some(token) => resume = Some(token),
                            None => break,
                        }
                    }
                }
            }
            Audience::Attendees => {
                let mut resume = None;
                loop {
                    self.check_budget(stop_at)?;
                    let (users, next) = self
                        .events
                        .attendees(&event.id, resume, PAGE)
                        .await
                        .map_err(retry)?;
                    let page = self.follows.recipients(&users).await.map_err(retry)?;
                    let (s, k) = self
                        .mail_page(&event, reason, page, &mut seen, lease)
                        .await?;
                    (sent, skipped) = (sent + s, skipped + k);
                    match next {
                        Some(token) => resume = Some(token),
                        None => break,
                    }
                }
            }
        }
        tracing::info!(event_id = %event.id, sent, skipped, "notifications done");
        Ok(())
    }

    fn check_budget(&self, stop_at: i64) -> Result<(), MessageError> {
        if now_ms() >= stop_at {
            // Everyone mailed so far is recorded: the redelivery picks up from there.
            return Err(MessageError::Retryable(
                "time budget spent; the rest goes out on redelivery".into(),
            ));
        }
        Ok(())
    }

    /// Mails one page; returns (sent, skipped).
    async fn mail_page(
        &self,
        event: &Event,
        reason: Reason,
        page: Vec<Recipient>,
        seen: &mut HashSet<UserId>,
        lease: Timestamp,
    ) -> Result<(usize, usize), MessageError> {
        let (mut sent, mut skipped) = (0, 0);
        for recipient in page {
            // The organizer needs no mail about their own event; someone who follows both the
            // organizer and a tag gets one mail, not two.
            if recipient.user_id == event.organizer_id || !seen.insert(recipient.user_id.clone()) {
                skipped += 1;
                continue;
            }
            if self.mail_one(event, reason, &recipient, lease).await? {
                sent += 1;
            } else {
                skipped += 1;
            }
        }
        Ok((sent, skipped))
    }

    /// Mails one recipient unless already done or opted out; `true` if a mail went out.
    async fn mail_one(
        &self,
        event: &Event,
        reason: Reason,
        recipient: &Recipient,
        lease: Timestamp,
    ) -> Result<bool, MessageError> {
        let settings = self
            .follows
            .mail_settings(&recipient.user_id)
            .await
            .map_err(retry)?;
        if !settings.preferences.notifications {
            return Ok(false);
        }
        let key = format!("{}#{}#{}", recipient.user_id, event.id, event.version);
        let claim = Claim::new(SCOPE, &key);
        let now = Timestamp::now();
        match self
            .idempotency
            .begin(claim, now, lease)
            .await
            .map_err(retry)?
        {
            Begun::AlreadyDone(_) => return Ok(false),
            Begun::InProgressElsewhere => {
                return Err(MessageError::Retryable(
                    "another invocation is mailing this recipient".into(),
                ));
            }
            Begun::Started => {}
        }
        // Read with the preferences; a recipient's first mail makes it, once claimed, so that
        // nobody who is never mailed gets one.
        let token = match settings.unsubscribe_token {
            Some(token) => token,
            None => match self
                .follows
                .make_unsubscribe_token(&recipient.user_id)
                .await
            {
                Ok(token) => token,
                Err(error) => {
                    self.idempotency.release(claim).await.map_err(retry)?;
                    return Err(retry(error));
                }
            },
        };
        let link = format!("{}?token={token}", self.unsubscribe_url);
        let mail = compose(reason, event, recipient.email.as_str(), &link);
        let done_until = now.plus_seconds(REMEMBER_SECONDS);
        match self.mailer.send(&mail).await {
            Ok(_) => {
                evently_shared::metrics::count(evently_shared::metrics::name::MAILS_SENT, None);
                if let Err(error) = self.idempotency.complete(claim, None, done_until).await {
                    tracing::error!(%error, "mail sent but not recorded; the claim blocks a resend until it lapses");
                }
                Ok(true)
            }
            Err(MailError::Rejected(reason)) => {
                tracing::warn!(user_id = %recipient.user_id, %reason, rejected_recipients = 1, "notification rejected");
                self.idempotency
                    .complete(claim, None, done_until)
                    .await
                    .map_err(retry)?;
                Ok(false)
            }
            Err(error) => {
                self.idempotency.release(claim).await.map_err(retry)?;
                Err(MessageError::Retryable(error.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{
        Capacity, Description, DisplayName, Email, EventDraft, Schedule, Tag, Tags, Title, User,
        Venue, Visibility,
    };
    use evently_shared::envelope::{CorrelationId, EventChange};
    use evently_shared::fakes::{
        InMemoryEvents, InMemoryIdempotency, InMemoryUsers, RecordingMailer,
    };
    use evently_shared::ports::{Preferences, UserStore};
    use serde_json::json;

    use evently_shared::envelope::Envelope;

    use super::*;

    type App = Notifier<InMemoryEvents, InMemoryUsers, RecordingMailer, InMemoryIdempotency>;

    fn app() -> App {
        Notifier {
            events: InMemoryEvents::default(),
            follows: InMemoryUsers::default(),
            mailer: RecordingMailer::default(),
            idempotency: InMemoryIdempotency::default(),
            unsubscribe_url: "https://api.example.com/unsubscribe".into(),
        }
    }

    async fn user(app: &App, name: &str) -> User {
        let user = User::create(
            Email::parse("email", &format!("{name}@example.com")).unwrap(),
            DisplayName::parse("display_name", name).unwrap(),
            Timestamp::now(),
        );
        let envelope = envelope(DomainEvent::UserCreated(user.clone()));
        app.follows.create(&user, "hash", &envelope).await.unwrap();
        user
    }

    async fn meetup(app: &App, organizer: &User, tags: &[&str]) -> Event {
        let now = Timestamp::now();
        let draft = EventDraft {
            title: Title::parse("title", "Rust <night>").unwrap(),
            description: Description::parse("d", "").unwrap(),
            schedule: Schedule::upcoming(now.plus_seconds(86_400), now.plus_seconds(90_000), now)
                .unwrap(),
            venue: Venue::parse("venue", "Hall").unwrap(),
            tags: Tags::new(tags.iter().map(|t| Tag::parse("t", t).unwrap()).collect()).unwrap(),
            visibility: Visibility::Public,
            capacity: Some(Capacity::new("capacity", 100).unwrap()),
        };
        let event = Event::create(draft, organizer.id.clone(), now);
        let envelope = DomainEvent::EventCreated(event.clone()).into_envelope(
            "/t",
            CorrelationId::generate(),
            now,
        );
        app.events.create(&event, &envelope).await.unwrap();
        event
    }

    /// `count` new users RSVP to `event`.
    async fn attend(app: &App, event: &Event, prefix: &str, count: usize) {
        for i in 0..count {
            let attendee = user(app, &format!("{prefix}{i:02}")).await;
            let rsvp = evently_shared::envelope::Rsvp {
                event_id: event.id,
                user_id: attendee.id.clone(),
                at: Timestamp::now(),
            };
            let envelope = envelope(DomainEvent::RsvpCreated(rsvp));
            app.events
                .rsvp(event, &attendee.id, Timestamp::now(), &envelope)
                .await
                .unwrap();
        }
    }

    async fn mute(app: &App, user: &User) {
        app.follows
            .set_preferences(
                &user.id,
                Preferences {
                    notifications: false,
                },
            )
            .await
            .unwrap();
    }

    fn envelope(event: DomainEvent) -> Envelope {
        event.into_envelope("/t", CorrelationId::generate(), Timestamp::now())
    }

    fn batch(envelope: &Envelope) -> SqsEvent {
        serde_json::from_value(
            json!({ "Records": [{ "messageId": "m1", "body": envelope.to_json() }] }),
        )
        .unwrap()
    }

    fn far_deadline() -> i64 {
        now_ms() + 60_000
    }

    fn mailed(app: &App) -> Vec<String> {
        let mut to: Vec<String> = app.mailer.sent().into_iter().map(|m| m.to).collect();
        to.sort();
        to
    }

    #[tokio::test]
    async fn a_new_event_mails_each_follower_once_and_respects_preferences() {
        let app = app();
        let organizer = user(&app, "org").await;
        let (both, tag_only, muted) = (
            user(&app, "both").await,
            user(&app, "tag").await,
            user(&app, "muted").await,
        );
        app.follows
            .follow(&both, &FollowTarget::Organizer(organizer.id.clone()))
            .await
            .unwrap();
        app.follows
            .follow(&both, &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()))
            .await
            .unwrap();
        app.follows
            .follow(
                &tag_only,
                &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()),
            )
            .await
            .unwrap();
        app.follows
            .follow(&muted, &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()))
            .await
            .unwrap();
        mute(&app, &muted).await;
        let event = meetup(&app, &organizer, &["rust"]).await;
        let created = envelope(DomainEvent::EventCreated(event));

        for _ in 0..3 {
            let response = app
                .handle_batch(batch(&created), far_deadline())
                .await
                .unwrap();
            assert!(response.batch_item_failures.is_empty());
        }

        assert_eq!(mailed(&app), ["both@example.com", "tag@example.com"]);
        let mail = &app.mailer.sent()[0];
        assert!(
            mail.text
                .contains("https://api.example.com/unsubscribe?token=")
        );
        assert!(mail.html.contains("Rust &lt;night&gt;"));
    }

    #[tokio::test]
    async fn a_follower_gets_an_unsubscribe_token_with_their_first_mail_and_keeps_it() {
        let app = app();
        let organizer = user(&app, "org").await;
        let (follower, muted) = (user(&app, "fan").await, user(&app, "muted").await);
        for who in [&follower, &muted] {
            app.follows
                .follow(who, &FollowTarget::Organizer(organizer.id.clone()))
                .await
                .unwrap();
        }
        mute(&app, &muted).await;
        let follows = &app.follows;
        let token = |user: &User| {
            let id = user.id.clone();
            async move { follows.mail_settings(&id).await.unwrap().unsubscribe_token }
        };
        assert_eq!(token(&follower).await, None);

        for tags in [["rust"], ["lambda"]] {
            let event = meetup(&app, &organizer, &tags).await;
            let created = envelope(DomainEvent::EventCreated(event));
            let response = app
                .handle_batch(batch(&created), far_deadline())
                .await
                .unwrap();
            assert!(response.batch_item_failures.is_empty());
        }

        let made = token(&follower).await.expect("made by the first mail");
        let links: Vec<bool> = app
            .mailer
            .sent()
            .iter()
            .map(|mail| mail.text.contains(&format!("?token={made}")))
            .collect();
        assert_eq!(links, [true, true]);
        assert_eq!(token(&muted).await, None, "nobody unmailed gets a token");
    }

    #[tokio::test]
    async fn a_first_mail_reads_the_recipients_settings_once_though_it_makes_their_token() {
        let app = app();
        let organizer = user(&app, "org").await;
        let follower = user(&app, "fan").await;
        app.follows
            .follow(&follower, &FollowTarget::Organizer(organizer.id.clone()))
            .await
            .unwrap();
        let created = envelope(DomainEvent::EventCreated(
            meetup(&app, &organizer, &["rust"]).await,
        ));

        let response = app
            .handle_batch(batch(&created), far_deadline())
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(app.mailer.sent().len(), 1);
        let made = app.follows.mail_settings(&follower.id).await.unwrap();
        assert!(made.unsubscribe_token.is_some(), "made by this first mail");
        // One read in the handler, one by this test.
        assert_eq!(app.follows.settings_reads(), 2);
    }

    #[tokio::test]
    async fn a_venue_change_mails_every_attendee_once_across_many_pages() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "a", 60).await;
        let mut moved = event.clone();
        moved.venue = Venue::parse("venue", "Library").unwrap();
        moved.version = 2;
        let change = envelope(DomainEvent::EventUpdated(EventChange {
            event: moved,
            changed: vec!["venue".into()],
        }));

        app.handle_batch(batch(&change), far_deadline())
            .await
            .unwrap();
        app.handle_batch(batch(&change), far_deadline())
            .await
            .unwrap();

        let to = mailed(&app);
        assert_eq!(to.len(), 60);
        assert_eq!(to.iter().collect::<HashSet<_>>().len(), 60, "nobody twice");
    }

    #[tokio::test]
    async fn a_run_without_time_left_defers_everything_to_the_redelivery() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "p", 30).await;
        let cancelled = envelope(DomainEvent::EventCancelled(event.cancelled()));
        let out_of_time = now_ms() - 1;

        let stopped = app
            .handle_batch(batch(&cancelled), out_of_time)
            .await
            .unwrap();
        let resumed = app
            .handle_batch(batch(&cancelled), far_deadline())
            .await
            .unwrap();

        assert_eq!(
            stopped.batch_item_failures.len(),
            1,
            "stopped for lack of time"
        );
        assert!(resumed.batch_item_failures.is_empty());
        assert_eq!(mailed(&app).len(), 30);
    }

    #[tokio::test]
    async fn a_mail_outage_midway_resumes_without_repeats_or_gaps() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "q", 30).await;
        let cancelled = envelope(DomainEvent::EventCancelled(event.cancelled()));
        *app.mailer.fail_after.lock().unwrap() = Some(10);

        let failed = app
            .handle_batch(batch(&cancelled), far_deadline())
            .await
            .unwrap();
        assert_eq!(mailed(&app).len(), 10, "the outage hit after ten mails");
        *app.mailer.fail_after.lock().unwrap() = None;
        let retried = app
            .handle_batch(batch(&cancelled), far_deadline())
            .await
            .unwrap();

        assert_eq!(failed.batch_item_failures.len(), 1);
        assert!(retried.batch_item_failures.is_empty());
        let to = mailed(&app);
        assert_eq!(to.len(), 30);
        assert_eq!(to.iter().collect::<HashSet<_>>().len(), 30, "nobody twice");
    }

    #[tokio::test]
    async fn a_title_fix_mails_nobody() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "att", 1).await;
        let mut renamed = event.clone();
        renamed.title = Title::parse("title", "Typo fixed").unwrap();
        renamed.version = 2;
        let change = envelope(DomainEvent::EventUpdated(EventChange {
            event: renamed,
            changed: vec!["title".into()],
        }));

        app.handle_batch(batch(&change), far_deadline())
            .await
            .unwrap();

        assert!(app.mailer.sent().is_empty());
    }
}
