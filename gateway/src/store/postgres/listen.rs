//! Wake-ups between replicas: every transaction that makes a destination's
//! work runnable (or frees one of its concurrency slots) sends
//! `pg_notify('yiwang_due', <destination key>)`, delivered at commit (see
//! `update::woken`); each replica keeps one dedicated connection that
//! `LISTEN`s and turns each notification into a [`DueSignal`], so an intake
//! on one replica is dispatched by another at once, not at its next poll.
//!
//! Notifications are a hint, never the source of truth: a dispatcher still
//! reads the store, and looks again every few seconds without one. What a
//! dropped connection missed is covered by [`DueSignal::All`], sent each
//! time the listener is (re)connected; it reconnects with a growing pause
//! (up to five seconds) until the store is dropped.

use super::{Connector, Target};
use crate::store::DueSignal;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Client, Connection};
use tokio_util::sync::CancellationToken;

/// The notification channel.
pub(super) const CHANNEL: &str = "yiwang_due";

/// A dead peer is noticed within about a minute, not TCP's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Start listening on a connection of its own, until `stop`; every
/// receiver of the returned sender gets the signals.
pub(super) fn start(target: &Target, stop: CancellationToken) -> broadcast::Sender<DueSignal> {
    let (sender, _) = broadcast::channel(1024);
    let signals = sender.clone();
    let mut config = target.config.clone();
    config.keepalives(true).keepalives_idle(KEEPALIVE_IDLE);
    let connector = target.connector.clone();
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            let listened = tokio::select! {
                () = stop.cancelled() => return,
                r = listen(&config, &connector, &signals) => r,
            };
            match listened {
                Ok(()) => tracing::warn!("PostgreSQL notification connection closed; reconnecting"),
                Err(e) => {
                    tracing::warn!(error = %super::describe(&e), "PostgreSQL notification connection failed; reconnecting")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
    sender
}

async fn listen(
    config: &tokio_postgres::Config,
    connector: &Connector,
    signals: &broadcast::Sender<DueSignal>,
) -> Result<(), tokio_postgres::Error> {
    match connector {
        Connector::Plain => {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            relay(client, conn, signals).await
        }
        Connector::Tls(tls) => {
            let (client, conn) = config.connect(tls.clone()).await?;
            relay(client, conn, signals).await
        }
    }
}

/// Issue `LISTEN` and pass on every notification until the connection ends.
/// The connection is polled here (not spawned) because its notifications
/// arrive only through [`Connection::poll_message`].
async fn relay<S, T>(
    client: Client,
    mut conn: Connection<S, T>,
    signals: &broadcast::Sender<DueSignal>,
) -> Result<(), tokio_postgres::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => {
                done?;
                listening = true;
                // Whatever was notified while no one listened.
                let _ = signals.send(DueSignal::All);
            }
            message = std::future::poll_fn(|cx| conn.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = signals.send(DueSignal::Destination(n.payload().to_string()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{
        CaseRecord, ClaimRequest, Destination, DueSignal, JobKind, JobState, PostgresOptions,
        PostgresStore, Store,
    };
    use std::time::Duration;
    use tokio::sync::broadcast;

    /// The next signal (a hang guard, not a timing assertion).
    async fn next(signals: &mut broadcast::Receiver<DueSignal>) -> DueSignal {
        tokio::time::timeout(Duration::from_secs(60), signals.recv())
            .await
            .expect("a signal within a minute")
            .expect("the listener runs")
    }

    async fn new_case(store: &PostgresStore, number: &str, network: &str) {
        let mut r = CaseRecord::blank(number);
        r.push_job(
            Destination::Network(network.into()),
            JobKind::Submit {
                after: vec![],
                inputs: Default::default(),
            },
            1_000,
        );
        store
            .update(number, &mut |_| Some(r.clone()))
            .await
            .expect("update");
    }

    /// Work made due on one replica wakes another's listener; a claim
    /// (work leaving the queue) wakes nobody; a settle that frees a slot does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_made_due_on_one_replica_signals_the_others() {
        let cluster = yiwang_pgtest::shared();
        cluster.create_database("notify").await.expect("database");
        let options = PostgresOptions {
            url: cluster.url("notify"),
            password: None,
            pool_size: 2,
            ca: None,
        };
        let a = PostgresStore::connect(&options).await.expect("replica a");
        let b = PostgresStore::connect(&options).await.expect("replica b");
        let mut signals = b.due_signals().expect("PostgreSQL signals");
        assert_eq!(next(&mut signals).await, DueSignal::All, "listening");
        new_case(&a, "C1", "tax").await;
        let tax = DueSignal::Destination("network:tax".into());
        assert_eq!(next(&mut signals).await, tax);
        let request = ClaimRequest {
            owner: "replica-a",
            now: 2_000,
            until: 3_000,
            limit: 4,
            max: 4,
        };
        let claims = a.claim("network:tax", &request).await.expect("claim");
        assert_eq!(claims.jobs.len(), 1);
        new_case(&a, "C2", "housing").await;
        assert_eq!(
            next(&mut signals).await,
            DueSignal::Destination("network:housing".into()),
            "the claim before it sent nothing"
        );
        a.update("C1", &mut |rec| {
            let mut rec = rec?;
            rec.job_mut(1)?.state = JobState::Delivered {
                at: 2_500,
                network_case_number: None,
            };
            Some(rec)
        })
        .await
        .expect("settle");
        assert_eq!(next(&mut signals).await, tax, "a slot came free");
    }
}
