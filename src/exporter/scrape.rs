//! One rendered `/metrics` body shared by every scrape of a short interval. The HTTP
//! endpoint (`http`) asks [`Scrapes::body`] for each `/metrics` request: a body rendered
//! less than [`REUSE`] ago from the table snapshot still current is handed out again (the
//! same `Arc`, no copy per client); otherwise one render runs on Tokio's blocking pool
//! while every scraper that comes meanwhile waits for that same render (single flight).
//! So a slow render of a big table never holds the control thread (which also serves
//! uvsadm and `/healthz`), and concurrent scrapers never multiply the memory a body costs.
//!
//! A table change (any command: `-d`, a reload, a health check's weight) makes the body
//! stale at once, so a deleted server is gone from the very next scrape; counters and
//! health flags may be up to [`REUSE`] old.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::body::Body;
use super::drops::Drops;
use crate::director::Director;
use crate::table::Table;

/// How long a rendered body is handed out again while the table does not change.
pub const REUSE: Duration = Duration::from_secs(1);

/// Why a scrape has no body.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The render thread panicked, or the runtime shut down before it ran.
    #[error("the metrics could not be rendered")]
    RenderFailed,
}

/// A body and what it was made from.
#[derive(Debug)]
struct Rendered {
    body: Arc<Body>,
    /// Held (not just its address) so that a new snapshot can never be mistaken for it.
    snapshot: Arc<Table>,
    at: Instant,
}

impl Rendered {
    fn serves(&self, current: &Arc<Table>) -> bool {
        Arc::ptr_eq(&self.snapshot, current) && self.at.elapsed() < REUSE
    }
}

type Outcome = Option<Arc<Rendered>>;

#[derive(Debug, Default)]
struct State {
    latest: Option<Arc<Rendered>>,
    /// The render in progress: None until it is done.
    rendering: Option<watch::Receiver<Outcome>>,
}

/// The shared bodies of one endpoint.
#[derive(Debug)]
pub struct Scrapes {
    director: Arc<Director>,
    /// The endpoint's resets, written into each body.
    drops: Arc<Drops>,
    state: Mutex<State>,
}

impl Scrapes {
    pub fn new(director: Arc<Director>, drops: Arc<Drops>) -> Arc<Scrapes> {
        Arc::new(Scrapes {
            director,
            drops,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is two Options, consistent at every point a panic could strike.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exposition as of now (at most [`REUSE`] old, of the current table).
    ///
    /// Errors: [`ScrapeError::RenderFailed`] when the render did not finish.
    pub async fn body(self: &Arc<Self>) -> Result<Arc<Body>, ScrapeError> {
        // A render already running may be of an older table than this scrape saw: after
        // waiting for it, look again; the last attempt takes what it gets.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let (mut done, ours) = {
                let mut state = self.state();
                let current = self.director.table.snapshot();
                if let Some(r) = &state.latest
                    && r.serves(&current)
                {
                    return Ok(Arc::clone(&r.body));
                }
                match &state.rendering {
                    Some(running) => (running.clone(), false),
                    None => (self.start(&mut state, current), true),
                }
            };
            let rendered = match done.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone(),
                Err(_) => return Err(ScrapeError::RenderFailed),
            };
            let Some(rendered) = rendered else {
                return Err(ScrapeError::RenderFailed);
            };
            if ours
                || attempt == ATTEMPTS
                || Arc::ptr_eq(&rendered.snapshot, &self.director.table.snapshot())
            {
                return Ok(Arc::clone(&rendered.body));
            }
        }
        Err(ScrapeError::RenderFailed)
    }

    /// Starts rendering `snapshot` on the blocking pool; the receiver sees the result.
    fn start(
        self: &Arc<Self>,
        state: &mut State,
        snapshot: Arc<Table>,
    ) -> watch::Receiver<Outcome> {
        // The old body goes now, not when the new one is ready: one body at a time
        // (clients still writing it keep it until they are done).
        state.latest = None;
        let (tx, rx) = watch::channel(None);
        state.rendering = Some(rx.clone());
        let publish = Publish {
            scrapes: Arc::clone(self),
            tx,
        };
        // Between scrapes a body is dead weight (it may be hundreds of megabytes): the
        // cache lets go of it once it is too old to hand out.
        let mut rendered = rx.clone();
        let scrapes = Arc::clone(self);
        tokio::spawn(async move {
            if rendered.wait_for(Option::is_some).await.is_ok() {
                tokio::time::sleep(REUSE).await;
                scrapes.expire();
            }
        });
        tokio::task::spawn_blocking(move || {
            let scrapes = &publish.scrapes;
            let body = super::render(&scrapes.director, &snapshot, &scrapes.drops);
            publish.done(Rendered {
                body: Arc::new(body),
                snapshot,
                at: Instant::now(),
            });
        });
        rx
    }

    /// Forgets the latest body if it is too old to hand out.
    fn expire(&self) {
        let mut state = self.state();
        if state
            .latest
            .as_ref()
            .is_some_and(|r| r.at.elapsed() >= REUSE)
        {
            state.latest = None;
        }
    }
}

/// Hands a render's result to its waiters; dropped without a result (a panic, or a
/// runtime shutting down), it ends the render in progress so the next scrape starts one.
struct Publish {
    scrapes: Arc<Scrapes>,
    tx: watch::Sender<Outcome>,
}

impl Publish {
    fn done(self, rendered: Rendered) {
        let rendered = Arc::new(rendered);
        {
            let mut state = self.scrapes.state();
            state.latest = Some(Arc::clone(&rendered));
            state.rendering = None;
        }
        // Waiters hold receivers; none left is fine.
        let _ = self.tx.send(Some(rendered));
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        self.scrapes.state().rendering = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::director::PlaneOptions;
    use crate::table::{
        Command, ServiceConfig, ServiceFlags, ServiceKey, TableHandle, UnicastOnly,
    };

    fn director() -> Arc<Director> {
        let table = Arc::new(TableHandle::new(Box::new(UnicastOnly)));
        let options = PlaneOptions {
            threads: 1,
            userspace: false,
            ..PlaneOptions::default()
        };
        Director::new(table, options).expect("director")
    }

    fn add_fwmark(d: &Director, mark: u32) {
        let config = ServiceConfig {
            key: ServiceKey::Fwmark {
                mark,
                family: crate::table::Family::Inet,
            },
            scheduler: "rr".into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: crate::table::Netmask::V4(std::net::Ipv4Addr::BROADCAST),
            pe: None,
            options: Default::default(),
        };
        d.table
            .apply_all(&[Command::AddService(config)])
            .expect("add service");
    }

    #[tokio::test]
    async fn concurrent_scrapes_share_one_body_until_the_table_changes() {
        let d = director();
        add_fwmark(&d, 1);
        let scrapes = Scrapes::new(Arc::clone(&d), Arc::default());
        let (a, b) = tokio::join!(scrapes.body(), scrapes.body());
        let (a, b) = (a.expect("a body"), b.expect("a body"));
        assert!(Arc::ptr_eq(&a, &b), "one render for both");
        add_fwmark(&d, 2);
        let changed = scrapes.body().await.expect("a body");
        assert!(!Arc::ptr_eq(&a, &changed), "a new table, a new body");
        let text = String::from_utf8(changed.to_vec()).expect("UTF-8");
        assert!(text.contains("local_mark=\"00000002\""), "{text}");
    }
}
