//! Where guests run, who runs next, and how much CPU each call used.
//!
//! Adapter calls never run on the listeners' tokio workers: a slow or
//! spinning adapter must not delay intake or a healthy network's delivery.
//! They run on the runtime's own multi-thread executor ([`GuestExecutor`]:
//! `yiwang-guest-N` threads, one per core, each niced to +10 so the kernel
//! prefers the listeners' threads whenever both are runnable).
//!
//! On that executor a round-robin [`Gate`] hands out as many run tokens as
//! there are guest threads. A call holds a token only while its future is
//! being polled, i.e. while it runs Wasm or synchronous host code (kv, log,
//! hmac). Whenever the future returns `Pending` — at every epoch tick (the
//! guest yields), while an HTTP exchange with the ministry is in flight,
//! while a WASI sleep or poll waits — the token goes to the next waiter and
//! the call queues again: FIFO within a network, round-robin between
//! networks. A network with many busy calls therefore gets one turn in
//! each round, not one turn per call, and a sleeping guest never holds a
//! token (it is not being polled).
//!
//! The CPU limit counts the call's own CPU time. [`Metered`] reads the
//! thread CPU clock (`CLOCK_THREAD_CPUTIME_ID`) before and after every poll
//! and sums the deltas; a poll runs on one thread, so the sum is exact and
//! includes host work done for the guest. The epoch callback compares the
//! sum plus the running poll's share against the limit ([`CpuMeter::used`]),
//! so the limit is enforced at tick granularity: a call is stopped at the
//! first tick after its CPU time passes the limit, i.e. within one
//! `epoch-tick-ms` of CPU time (more wall time when the machine is busy).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// The guests' own tokio runtime and the gate in front of it.
pub(crate) struct GuestExecutor {
    rt: Option<tokio::runtime::Runtime>,
    gate: Arc<Gate>,
}

impl GuestExecutor {
    /// One guest thread per available core.
    pub(crate) fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::with_threads(threads)
    }

    pub(crate) fn with_threads(threads: usize) -> std::io::Result<Self> {
        let n = Arc::new(AtomicUsize::new(0));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name_fn(move || format!("yiwang-guest-{}", n.fetch_add(1, Ordering::Relaxed)))
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(GuestExecutor {
            rt: Some(rt),
            gate: Gate::new(threads),
        })
    }

    /// Run `work` for `network` on a guest thread, polled only with a run
    /// token and under `meter`. The error is the task's panic or cancellation.
    pub(crate) async fn run<T, F>(
        &self,
        network: Arc<str>,
        meter: Arc<CpuMeter>,
        work: F,
    ) -> Result<T, tokio::task::JoinError>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let metered = Metered {
            inner: Box::pin(work),
            gate: self.gate.clone(),
            network,
            waiting: None,
            meter,
        };
        match &self.rt {
            // Dropping the wait (an abandoned call at shutdown, a caller
            // that gave up) ends the guest's task too, at its next await:
            // it must not go on holding its slot, its store and the kv.
            Some(rt) => tokio_util::task::AbortOnDropHandle::new(rt.spawn(metered)).await,
            None => unreachable!("the guest runtime is only taken on drop"),
        }
    }
}

impl Drop for GuestExecutor {
    // The last adapter may be dropped inside async code, where dropping a
    // tokio runtime the ordinary way panics.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Nice the calling thread to +10 (Linux: `setpriority` on the thread id).
fn lower_priority() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = nice_this_thread(10)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "guest threads run at normal priority: setpriority failed");
    }
}

#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "setpriority and gettid have no safe wrapper; see SAFETY below"
)]
fn nice_this_thread(nice: i32) -> std::io::Result<()> {
    // SAFETY: both calls take plain integers and touch no memory of ours;
    // on Linux, PRIO_PROCESS with a thread id sets that thread's nice value.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn nice_this_thread(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "per-thread priority is only set on Linux",
    ))
}

/// CPU time the calling thread has used, in nanoseconds.
#[expect(
    unsafe_code,
    reason = "clock_gettime has no safe wrapper; see SAFETY below"
)]
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The CPU time one call has used so far.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    /// Sum over finished polls.
    total_ns: AtomicU64,
    /// The polling thread's CPU clock when the running poll began.
    poll_start_ns: AtomicU64,
}

impl CpuMeter {
    /// Finished polls plus the running one. Valid on the polling thread
    /// (where the epoch callback runs); elsewhere, use [`CpuMeter::total`].
    pub(crate) fn used(&self) -> std::time::Duration {
        let partial = thread_cpu_ns().saturating_sub(self.poll_start_ns.load(Ordering::Relaxed));
        std::time::Duration::from_nanos(self.total_ns.load(Ordering::Relaxed) + partial)
    }

    /// CPU time of the finished polls.
    pub(crate) fn total(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.total_ns.load(Ordering::Relaxed))
    }
}

/// A call's future, polled only while holding a run token, with its CPU time summed.
struct Metered<F> {
    inner: Pin<Box<F>>,
    gate: Arc<Gate>,
    network: Arc<str>,
    waiting: Option<Pin<Box<dyn Future<Output = Token> + Send>>>,
    meter: Arc<CpuMeter>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(this.gate.clone().acquire(this.network.clone())));
        let token = match waiting.as_mut().poll(cx) {
            Poll::Ready(token) => token,
            Poll::Pending => return Poll::Pending,
        };
        this.waiting = None;
        let start = thread_cpu_ns();
        this.meter.poll_start_ns.store(start, Ordering::Relaxed);
        let out = this.inner.as_mut().poll(cx);
        let spent = thread_cpu_ns().saturating_sub(start);
        this.meter.total_ns.fetch_add(spent, Ordering::Relaxed);
        // Between polls the call runs nothing: its token goes to the next
        // waiter, and the next poll queues again behind the others.
        drop(token);
        out
    }
}

/// Run tokens, handed round-robin between networks and FIFO within one.
pub(crate) struct Gate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// Tokens nobody holds; non-zero only while nobody waits.
    free: usize,
    /// Each waiting network's waiters, oldest first.
    queues: HashMap<Arc<str>, VecDeque<oneshot::Sender<Token>>>,
    /// Networks with waiters, in the order they get their next turn.
    ring: VecDeque<Arc<str>>,
}

impl GateState {
    /// The next waiter: the first of the network whose turn it is; that
    /// network goes to the back of the ring if it has more.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Token>> {
        while let Some(network) = self.ring.pop_front() {
            let Some(queue) = self.queues.get_mut(&network) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                self.queues.remove(&network);
            } else {
                self.ring.push_back(network);
            }
            if next.is_some() {
                return next;
            }
        }
        None
    }
}

/// The right to run guest code on one guest thread; given back on drop.
pub(crate) struct Token {
    gate: Option<Arc<Gate>>,
}

impl Drop for Token {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl Gate {
    pub(crate) fn new(tokens: usize) -> Arc<Self> {
        Arc::new(Gate {
            state: Mutex::new(GateState {
                free: tokens.max(1),
                ..GateState::default()
            }),
        })
    }

    /// Wait for a token in `network`'s queue.
    pub(crate) async fn acquire(self: Arc<Self>, network: Arc<str>) -> Token {
        loop {
            let waiter = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.free > 0 {
                    state.free -= 1;
                    return Token {
                        gate: Some(self.clone()),
                    };
                }
                let (tx, rx) = oneshot::channel();
                let state = &mut *state;
                let queue = state.queues.entry(network.clone()).or_default();
                if queue.is_empty() {
                    state.ring.push_back(network.clone());
                }
                queue.push_back(tx);
                rx
            };
            if let Ok(token) = waiter.await {
                return token;
            }
        }
    }

    /// A token came back: hand it to the next waiter, or keep it free.
    fn release(self: &Arc<Self>) {
        loop {
            // Sent outside the lock: a token dropped during the send (its
            // waiter gave up at that moment) releases again.
            let next = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                match state.next_waiter() {
                    Some(tx) => tx,
                    None => {
                        state.free += 1;
                        return;
                    }
                }
            };
            match next.send(Token {
                gate: Some(self.clone()),
            }) {
                Ok(()) => return,
                // The waiter gave up (its call ended): try the next one.
                Err(mut unused) => unused.gate = None,
            }
        }
    }

    #[cfg(test)]
    fn free(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    /// With one token, a network with three waiters and another with one
    /// alternate: the second network's waiter runs second, not fourth.
    #[tokio::test]
    async fn tokens_go_round_robin_between_networks() {
        let gate = Gate::new(1);
        let held = gate.clone().acquire(net("busy")).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, n) in ["busy", "busy", "busy", "calm"].into_iter().enumerate() {
            let gate = gate.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let token = gate.acquire(net(n)).await;
                order.lock().unwrap().push(format!("{n}{i}"));
                drop(token);
            }));
            // Queue them in this order.
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["busy0", "calm3", "busy1", "busy2"]);
        assert_eq!(gate.free(), 1, "every token came back");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_token() {
        let gate = Gate::new(1);
        let held = gate.clone().acquire(net("a")).await;
        let gave_up = tokio::spawn(gate.clone().acquire(net("b")));
        tokio::task::yield_now().await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(held);
        assert_eq!(gate.free(), 1);
        let again = gate.clone().acquire(net("c")).await;
        assert_eq!(gate.free(), 0);
        drop(again);
    }

    /// A panic on a guest thread reaches the caller as an error, the
    /// executor keeps running, and dropping it inside async code is fine.
    #[tokio::test]
    async fn a_panic_on_a_guest_thread_is_an_error_not_a_crash() {
        let ex = GuestExecutor::with_threads(1).expect("executor");
        let meter = Arc::new(CpuMeter::default());
        let failed = ex
            .run::<(), _>(net("n"), meter.clone(), async { panic!("boom") })
            .await;
        assert!(failed.expect_err("the task panicked").is_panic());
        let ok = ex.run(net("n"), meter, async { 7 }).await;
        assert_eq!(ok.expect("still runs"), 7);
        drop(ex);
    }

    /// The meter sums the CPU a call burns while polled, and not the time
    /// it spends waiting between polls.
    #[tokio::test]
    async fn the_meter_counts_cpu_while_polled_not_waits() {
        let ex = GuestExecutor::with_threads(1).expect("executor");
        let meter = Arc::new(CpuMeter::default());
        let burn = ex.run(net("n"), meter.clone(), async {
            let start = thread_cpu_ns();
            while thread_cpu_ns() - start < 30_000_000 {
                std::hint::black_box(0u64);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        });
        burn.await.expect("ran");
        let used = meter.total();
        assert!(used >= std::time::Duration::from_millis(30), "{used:?}");
        assert!(used < std::time::Duration::from_millis(100), "{used:?}");
    }

    #[test]
    fn the_thread_cpu_clock_counts_work_not_sleep() {
        let before = thread_cpu_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let slept = thread_cpu_ns() - before;
        let mut x = 0u64;
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < 30_000_000 {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(slept < 20_000_000, "sleeping used {slept} ns of CPU");
    }
}
