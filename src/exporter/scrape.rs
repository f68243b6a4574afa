//! One rendered `/metrics` body shared by every scrape of a short interval. The HTTP
//! endpoint (`http`) asks [`Scrapes::body`] for each `/metrics` request: a body rendered
//! less than [`REUSE`] ago from the table snapshot still current is handed out again (the
//! same `Arc`, no copy per client); otherwise one render runs on a thread of its own
//! (`render_thread`) while every scraper that comes meanwhile waits for that same render
//! (single flight). So a slow render of a big table never holds the control thread
//! (which also serves uvsadm and `/healthz`), and concurrent scrapers never multiply the
//! memory a body costs.
//!
//! A table change (any command: `-d`, a reload, a health check's weight) makes the body
//! stale at once, so a deleted server is gone from the very next scrape; counters and
//! health flags may be up to [`REUSE`] old.
//!
//! Bodies are numbered in the order they are made (their generation), and a client still
//! writing one when two newer bodies exist must stop ([`is_stale`], [`Scrapes::stale`]):
//! the endpoint resets it. So at most three bodies are ever in memory, the newest and the
//! one before it (held by the clients still reading them) and the one being rendered,
//! however many slow readers come and however far apart. Sharing alone does not bound
//! that: a reader that never reads holds its body until its write deadline, and readers
//! arriving more than [`REUSE`] apart each get a body of their own, so some 30 bodies
//! (the write deadline over the reuse interval), more with a changing table, could be
//! alive at once.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Source;
use super::body::Body;
use super::drops::Drops;
use super::render_thread::{self, RenderThread};
use crate::lock::Locked;
use crate::table::Table;

/// How long a rendered body is handed out again while the table does not change.
pub const REUSE: Duration = Duration::from_secs(1);

/// Bodies clients may still be writing: the newest one and the one before it. Two, not
/// one, so that a scraper that just got its body is not cut off by the next scrape (or
/// table change) a moment later; a body two behind has had at least a [`REUSE`] interval
/// and a whole render to be read.
pub const KEPT: u64 = 2;

/// Whether a client writing the body of `generation` must stop, the newest body made
/// being `newest`.
pub fn is_stale(generation: u64, newest: u64) -> bool {
    newest.saturating_sub(generation) >= KEPT
}

/// Why a scrape has no body.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The render thread panicked, or the runtime shut down before it ran.
    #[error("the metrics could not be rendered")]
    RenderFailed,
}

/// A body as one scrape gets it.
#[derive(Debug, Clone)]
pub struct Shared {
    pub body: Arc<Body>,
    /// Its place in the order bodies are made, from 1 (see [`Scrapes::stale`]).
    pub generation: u64,
}

/// A body and what it was made from.
#[derive(Debug)]
struct Rendered {
    body: Arc<Body>,
    generation: u64,
    /// Held (not just its address) so that a new snapshot can never be mistaken for it.
    snapshot: Arc<Table>,
    at: Instant,
}

impl Rendered {
    fn serves(&self, current: &Arc<Table>) -> bool {
        Arc::ptr_eq(&self.snapshot, current) && self.at.elapsed() < REUSE
    }

    fn shared(&self) -> Shared {
        Shared {
            body: Arc::clone(&self.body),
            generation: self.generation,
        }
    }
}

type Outcome = Option<Arc<Rendered>>;

#[derive(Debug, Default)]
struct State {
    latest: Option<Arc<Rendered>>,
    /// The render in progress: None until it is done.
    rendering: Option<watch::Receiver<Outcome>>,
    renderer: RenderThread<Render>,
}

/// What a body is made with, from the daemon, one table snapshot and the endpoint's
/// resets: `/metrics`'s exposition ([`super::render`]) or the status page
/// ([`super::page::render`]).
pub type Renderer = Box<dyn Fn(&dyn Source, &Table, &Drops) -> Body + Send + Sync>;

/// The shared bodies of one endpoint (one `Scrapes` per kind of body).
pub struct Scrapes {
    source: Arc<dyn Source>,
    render: Renderer,
    /// The endpoint's resets, written into each body.
    drops: Arc<Drops>,
    state: Mutex<State>,
    /// The generation of the newest body made (0: none yet); clients writing older ones
    /// watch it to know when to stop.
    newest: watch::Sender<u64>,
}

impl std::fmt::Debug for Scrapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrapes")
            .field("drops", &self.drops)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Scrapes {
    /// The `/metrics` bodies of `source`.
    pub fn new(source: Arc<dyn Source>, drops: Arc<Drops>) -> Arc<Scrapes> {
        Scrapes::rendered_by(source, drops, Box::new(super::render))
    }

    /// Bodies made by `render`, shared and bounded as `/metrics`'s are.
    pub fn rendered_by(
        source: Arc<dyn Source>,
        drops: Arc<Drops>,
        render: Renderer,
    ) -> Arc<Scrapes> {
        Arc::new(Scrapes {
            source,
            render,
            drops,
            state: Mutex::default(),
            newest: watch::Sender::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every point a panic could strike.
        self.state.locked()
    }

    /// The exposition as of now (at most [`REUSE`] old, of the current table).
    ///
    /// Errors: [`ScrapeError::RenderFailed`] when the render did not finish.
    pub async fn body(self: &Arc<Self>) -> Result<Shared, ScrapeError> {
        // A render already running may be of an older table than this scrape saw: after
        // waiting for it, look again; the last attempt takes what it gets.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let (mut done, ours) = {
                let mut state = self.state();
                let current = self.source.table().snapshot();
                if let Some(r) = &state.latest
                    && r.serves(&current)
                {
                    return Ok(r.shared());
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
                || Arc::ptr_eq(&rendered.snapshot, &self.source.table().snapshot())
            {
                return Ok(rendered.shared());
            }
        }
        Err(ScrapeError::RenderFailed)
    }

    /// Completes once a client writing the body of `generation` must stop: when two
    /// newer bodies have been made ([`is_stale`]), at once if they already have.
    pub async fn stale(&self, generation: u64) {
        let mut newest = self.newest.subscribe();
        if newest
            .wait_for(|newest| is_stale(generation, *newest))
            .await
            .is_err()
        {
            // The sender lives as long as `self`, which this borrow keeps: never here,
            // and should it be, no newer body can come.
            std::future::pending::<()>().await;
        }
    }

    /// Starts rendering `snapshot` on the render thread; the receiver sees the result.
    fn start(
        self: &Arc<Self>,
        state: &mut State,
        snapshot: Arc<Table>,
    ) -> watch::Receiver<Outcome> {
        // The cache lets go of the old body now, not when the new one is ready (clients
        // still writing it keep it until they are done, or it is two bodies behind).
        state.latest = None;
        let (tx, rx) = watch::channel(None);
        state.rendering = Some(rx.clone());
        let publish = Publish {
            scrapes: Arc::clone(self),
            tx,
            runtime: tokio::runtime::Handle::current(),
            ended: false,
        };
        if let Err((mut render, e)) = state.renderer.send(Render { snapshot, publish }) {
            tracing::warn!(error = %e, "metrics endpoint: cannot start the render thread");
            // Ended here, under the lock this holds (which the publisher's drop would
            // take): the waiters see a failed render, the next scrape tries again.
            render.publish.ended = true;
            state.rendering = None;
        }
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

/// One render, as the render thread runs it.
struct Render {
    snapshot: Arc<Table>,
    publish: Publish,
}

impl render_thread::Job for Render {
    fn run(self) {
        let body = {
            let scrapes = &self.publish.scrapes;
            (scrapes.render)(&*scrapes.source, &self.snapshot, &scrapes.drops)
        };
        self.publish.done(body, self.snapshot);
    }
}

/// Hands a render's result to its waiters; dropped without a result (a panic), it ends
/// the render in progress so the next scrape starts one.
struct Publish {
    scrapes: Arc<Scrapes>,
    tx: watch::Sender<Outcome>,
    /// Where the cache's expiry runs (`done` is called on the render thread).
    runtime: tokio::runtime::Handle,
    /// The end of this render is recorded in `rendering` already (by `done`, or by
    /// `start` when no thread took it): from then on `rendering` may be a newer one's.
    ended: bool,
}

impl Publish {
    /// Makes `body` the newest, with the next generation; clients writing the one before
    /// the previous body are told to stop.
    fn done(mut self, body: Body, snapshot: Arc<Table>) {
        let rendered = {
            let mut state = self.scrapes.state();
            let generation = *self.scrapes.newest.borrow() + 1;
            let rendered = Arc::new(Rendered {
                body: Arc::new(body),
                generation,
                snapshot,
                at: Instant::now(),
            });
            state.latest = Some(Arc::clone(&rendered));
            state.rendering = None;
            // Under the state lock, so generations are told in the order they are made
            // (there is one render at a time anyway).
            self.scrapes.newest.send_replace(generation);
            rendered
        };
        self.ended = true;
        // Waiters hold receivers; none left is fine. The channel is gone once they have
        // taken the body: nothing else keeps it.
        let _ = self.tx.send(Some(rendered));
        // Between scrapes a body is dead weight (it may be hundreds of megabytes): the
        // cache lets go of it once it is too old to hand out. The timer holds the cache,
        // not the body, so that the body goes as soon as its clients are done with it.
        let scrapes = Arc::clone(&self.scrapes);
        self.runtime.spawn(async move {
            tokio::time::sleep(REUSE).await;
            scrapes.expire();
        });
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        // Ends a render that failed; a published one ended itself, and a newer render
        // may have started since.
        if !self.ended {
            self.scrapes.state().rendering = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::State;
    use crate::table::{Command, ServiceConfig, ServiceKey, TableHandle, UnicastOnly};

    /// A daemon of a table and nothing else.
    struct Fixed {
        table: TableHandle,
    }

    impl Source for Fixed {
        fn table(&self) -> &TableHandle {
            &self.table
        }

        fn state(&self) -> State {
            State::default()
        }
    }

    fn director() -> Arc<Fixed> {
        Arc::new(Fixed {
            table: TableHandle::new(Box::new(UnicastOnly)),
        })
    }

    fn add_fwmark(d: &Fixed, mark: u32) {
        let key = ServiceKey::Fwmark {
            mark,
            family: crate::table::Family::Inet,
        };
        let config = ServiceConfig::new(key, "rr");
        d.table
            .apply_all(&[Command::AddService(config)])
            .expect("add service");
    }

    /// A daemon with fwmark service 1, and the scrapes of its endpoint.
    fn scraped() -> (Arc<Fixed>, Arc<Scrapes>) {
        let d = director();
        add_fwmark(&d, 1);
        let scrapes = Scrapes::new(Arc::clone(&d) as _, Arc::default());
        (d, scrapes)
    }

    #[tokio::test]
    async fn concurrent_scrapes_share_one_body_until_the_table_changes() {
        let (d, scrapes) = scraped();
        let (a, b) = tokio::join!(scrapes.body(), scrapes.body());
        let (a, b) = (a.expect("a body"), b.expect("a body"));
        assert!(Arc::ptr_eq(&a.body, &b.body), "one render for both");
        assert_eq!(a.generation, b.generation);
        add_fwmark(&d, 2);
        let changed = scrapes.body().await.expect("a body");
        assert!(
            !Arc::ptr_eq(&a.body, &changed.body),
            "a new table, a new body"
        );
        assert_eq!(changed.generation, a.generation + 1);
        let text = String::from_utf8(changed.body.to_vec()).expect("UTF-8");
        assert!(text.contains("local_mark=\"00000002\""), "{text}");
    }

    #[test]
    fn a_body_is_stale_once_two_newer_ones_exist() {
        assert!(!is_stale(1, 1), "the newest");
        assert!(!is_stale(1, 2), "the one before the newest");
        assert!(is_stale(1, 3));
        assert!(is_stale(1, 300));
        assert!(!is_stale(5, 0), "no body newer than itself");
    }

    #[tokio::test]
    async fn only_its_clients_hold_a_body_once_a_newer_one_is_made() {
        let (d, scrapes) = scraped();
        let first = scrapes.body().await.expect("a body");
        add_fwmark(&d, 2);
        let second = scrapes.body().await.expect("a body");
        // Not the cache, its expiry timer or the render's channel: the body goes with
        // the last client writing it.
        assert_eq!(Arc::strong_count(&first.body), 1);
        assert_eq!(
            Arc::strong_count(&second.body),
            2,
            "this client and the cache"
        );
    }

    /// Whether a writer of `generation` has been told to stop, without waiting.
    async fn told(scrapes: &Scrapes, generation: u64) -> bool {
        tokio::time::timeout(Duration::ZERO, scrapes.stale(generation))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn writers_of_a_body_two_behind_are_told_to_stop() {
        let (d, scrapes) = scraped();
        let first = scrapes.body().await.expect("a body");
        // A writer already waiting hears it when the body goes stale.
        let waiting = {
            let scrapes = Arc::clone(&scrapes);
            tokio::spawn(async move { scrapes.stale(first.generation).await })
        };
        add_fwmark(&d, 2);
        let second = scrapes.body().await.expect("a body");
        assert!(!told(&scrapes, first.generation).await, "one behind: kept");
        assert!(!waiting.is_finished());
        add_fwmark(&d, 3);
        let third = scrapes.body().await.expect("a body");
        assert_eq!(third.generation, first.generation + 2);
        assert!(told(&scrapes, first.generation).await, "two behind: stale");
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting writer is told")
            .expect("the waiting task");
        assert!(!told(&scrapes, second.generation).await);
        assert!(!told(&scrapes, third.generation).await);
    }
}
