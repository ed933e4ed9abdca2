//! The server: binds one SO_REUSEPORT listener per shard, starts the shards on their
//! pinned threads, relays shutdown signals, and collects the shards' counters.

use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver};
use socket2::{Domain, Protocol, Socket, Type};

use crate::call::{CallDone, CallError, Called};
use crate::config::Config;
use crate::counters::Counters;
use crate::error::Error;
use crate::features::{Features, ShardFeatures};
use crate::handler::Handler;
use crate::io::{call_work, ShardIo};
use crate::mailbox::{CallRequest, Mailbox, Mailboxes, ReplyPath, ShardMsg};
use crate::offload::OffloadPool;
use crate::shard::{Shard, ShardParts};
use crate::sys::fd;

/// A server with its listeners bound, ready to start.
#[derive(Debug)]
pub struct Server {
    config: Arc<Config>,
    /// Per shard: its TCP listener and/or its UDP socket.
    sockets: Vec<(Option<Socket>, Option<Socket>)>,
    local_addr: SocketAddr,
}

/// A handle that asks every shard to drain and stop. Cheap to clone, usable from any
/// thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    shards: Mailboxes,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown on every shard (idempotent).
    pub fn shutdown(&self) {
        for s in self.shards.iter() {
            s.send(ShardMsg::Shutdown);
        }
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShutdownHandle({} shards)", self.shards.len())
    }
}

/// A handle through which a thread outside the shards (a metrics endpoint, an admin
/// thread) runs cross-shard calls, as [`Io::call`](crate::Io::call) does from a
/// connection: the closure runs on the target shard's thread with the handler it names
/// (the server's handler type, or one nested in it: [`Handler::find`]) and that
/// shard's [`ShardIo`]; its value comes back on a channel of this call's own, read with
/// [`PendingCall::wait`]. Cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct CallHandle {
    shards: Mailboxes,
}

impl CallHandle {
    /// How many shards the server runs (the calls' `shard` ranges over `0..shards()`).
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Runs `f` on shard `shard` with its handler of type `H`. Refused at once, never
    /// blocking, for a shard index out of range, a full mailbox (`mailbox_calls`) or a
    /// stopped shard; a handler type found nowhere on the target answers
    /// [`CallError::WrongHandler`] through the returned [`PendingCall`], as does a
    /// target that stops with the call still queued ([`CallError::ShardGone`]). A panic
    /// in `f` is a panic of the target shard, as for any handler callback.
    pub fn call<H: 'static, R: Send + 'static>(
        &self,
        shard: usize,
        f: impl FnOnce(&mut H, &mut ShardIo<'_>) -> R + Send + 'static,
    ) -> Result<PendingCall<R>, CallError> {
        let target = self.shards.get(shard).ok_or(CallError::NoShard(shard))?;
        let (tx, rx) = bounded(1);
        target.send_call(CallRequest {
            work: Some(call_work(f)),
            reply: ReplyPath::Thread(tx),
        })?;
        Ok(PendingCall {
            rx,
            called: Called::new(),
        })
    }
}

impl fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallHandle({} shards)", self.shards.len())
    }
}

/// A call made through a [`CallHandle`], its outcome still to come.
pub struct PendingCall<R> {
    rx: Receiver<CallDone>,
    called: Called<R>,
}

impl<R: 'static> PendingCall<R> {
    /// Waits at most `timeout` for the call's outcome: `None` if none came by then (the
    /// call may still run later; its value is then dropped).
    pub fn wait(self, timeout: Duration) -> Option<Result<R, CallError>> {
        let done = self.rx.recv_timeout(timeout).ok()?;
        Some(self.called.result(done))
    }
}

impl<R> fmt::Debug for PendingCall<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PendingCall<{}>", std::any::type_name::<R>())
    }
}

/// A started server.
pub struct Running {
    threads: Vec<JoinHandle<Option<Counters>>>,
    done: crossbeam_channel::Receiver<(usize, bool)>,
    handle: ShutdownHandle,
    features: Features,
    local_addr: SocketAddr,
    pool: Option<OffloadPool>,
}

/// What the shards report when they stop.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each shard's counters, by shard index.
    pub shards: Vec<Counters>,
}

impl Server {
    pub(crate) fn bind(config: Config) -> Result<Server, Error> {
        let mut addr = config.listen;
        let mut sockets = Vec::with_capacity(config.shards);
        for _ in 0..config.shards {
            let tcp = if config.tcp {
                let s = bind_listener(addr, config.backlog, config.defer_accept)
                    .map_err(|source| Error::Bind { addr, source })?;
                addr = bound_port(&s, addr);
                Some(s)
            } else {
                None
            };
            let udp = if config.udp {
                let s = bind_udp(addr).map_err(|source| Error::Bind { addr, source })?;
                addr = bound_port(&s, addr);
                Some(s)
            } else {
                None
            };
            sockets.push((tcp, udp));
        }
        Ok(Server {
            config: Arc::new(config),
            sockets,
            local_addr: addr,
        })
    }

    /// The address the listeners are bound to (with the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts the shards, each with its own handler from `factory(shard_index)`, and
    /// returns once all are ready to accept.
    pub fn start<H, F>(self, factory: F) -> Result<Running, Error>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        fd::ignore_sigpipe();
        if self.config.handle_signals {
            // Blocked here, inherited by every thread spawned below: only the signal
            // thread's sigwait sees SIGINT/SIGTERM.
            fd::block_shutdown_signals();
        }
        let factory = Arc::new(factory);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let n = self.config.shards;
        let mut inboxes = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let wake = Arc::new(fd::eventfd().map_err(|source| Error::Io {
                what: "creating the shard wake eventfd",
                source,
            })?);
            let (tx, rx) = unbounded();
            inboxes.push(Mailbox {
                tx,
                wake,
                calls_queued: Default::default(),
                call_bound: self.config.mailbox_calls,
            });
            receivers.push(rx);
        }
        let mailboxes: Mailboxes = Arc::new(inboxes);
        let pool = if self.config.offload_threads > 0 {
            Some(
                OffloadPool::start(
                    self.config.offload_threads,
                    self.config.offload_queue,
                    self.config.offload_cpus.clone(),
                    mailboxes.clone(),
                )
                .map_err(|source| Error::Io {
                    what: "starting the offload pool",
                    source,
                })?,
            )
        } else {
            None
        };
        let offload_tx = pool.as_ref().and_then(OffloadPool::sender);
        let mut threads = Vec::with_capacity(n);
        type Ready = (usize, Result<(ShardFeatures, Option<usize>), Error>);
        let (ready_tx, ready_rx) = unbounded::<Ready>();
        let (done_tx, done_rx) = unbounded();
        for ((id, (listener, udp)), rx) in self.sockets.into_iter().enumerate().zip(receivers) {
            let cpu = pick_cpu(&self.config, &cores, id);
            let parts = ShardParts {
                id,
                config: self.config.clone(),
                listener: listener.map(Into::into),
                udp: udp.map(Into::into),
                wake_fd: mailboxes[id].wake.clone(),
                rx,
                mailboxes: mailboxes.clone(),
                offload_tx: offload_tx.clone(),
            };
            let factory = factory.clone();
            let ready_tx = ready_tx.clone();
            let done_tx = done_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || {
                    let pinned = cpu
                        .filter(|c| core_affinity::set_for_current(*c))
                        .map(|c| c.id);
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        let handler = factory(id);
                        match Shard::new(parts, handler) {
                            Ok((shard, features)) => {
                                let _ = ready_tx.send((id, Ok((features, pinned))));
                                Some(shard.run())
                            }
                            Err(e) => {
                                let _ = ready_tx.send((id, Err(e)));
                                None
                            }
                        }
                    }));
                    let _ = done_tx.send((id, result.is_ok()));
                    result.unwrap_or(None)
                })
                .map_err(|source| Error::Io {
                    what: "spawning a shard thread",
                    source,
                })?;
            threads.push(thread);
        }
        drop(done_tx);
        drop(offload_tx);
        let handle = ShutdownHandle { shards: mailboxes };
        let mut first: Option<ShardFeatures> = None;
        let mut cpus = vec![None; n];
        let mut failure = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok((id, Ok((f, cpu)))) => {
                    cpus[id] = cpu;
                    if id == 0 || first.is_none() {
                        first = Some(f);
                    }
                }
                Ok((_, Err(e))) => {
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    failure.get_or_insert(Error::ShardPanicked(0));
                }
            }
        }
        if let Some(e) = failure {
            handle.shutdown();
            for t in threads {
                let _ = t.join();
            }
            if let Some(p) = pool {
                p.stop();
            }
            return Err(e);
        }
        let Some(shard) = first else {
            return Err(Error::ShardPanicked(0));
        };
        if self.config.handle_signals {
            spawn_signal_thread(handle.clone());
        }
        Ok(Running {
            threads,
            done: done_rx,
            handle,
            features: Features {
                shards: n,
                cpus,
                shard,
                buffers: (self.config.buf_ring_entries, self.config.buf_size),
                zero_copy_threshold: self.config.zero_copy_threshold,
                tcp: self.config.tcp,
                udp: self.config.udp,
            },
            local_addr: self.local_addr,
            pool,
        })
    }

    /// `start` then `wait`: runs until shut down.
    pub fn serve<H, F>(self, factory: F) -> Result<Report, Error>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.start(factory)?.wait()
    }
}

impl Running {
    /// What the shards use.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to shut the server down from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// A handle to run cross-shard calls from a thread outside the shards.
    pub fn call_handle(&self) -> CallHandle {
        CallHandle {
            shards: self.handle.shards.clone(),
        }
    }

    /// Waits until every shard has stopped. If one panics, the others are shut down
    /// and the panic is reported as an error.
    pub fn wait(self) -> Result<Report, Error> {
        let mut panicked = None;
        for _ in 0..self.threads.len() {
            match self.done.recv() {
                Ok((_, true)) => {}
                Ok((id, false)) => {
                    panicked.get_or_insert(id);
                    self.handle.shutdown();
                }
                Err(_) => break,
            }
        }
        let mut shards = Vec::with_capacity(self.threads.len());
        for t in self.threads {
            shards.push(t.join().ok().flatten().unwrap_or_default());
        }
        let leaked = crate::sys::lend::leaked();
        if leaked > 0 {
            // A shard went away with operations still in the kernel (a completion that
            // never came back in time): their memory was leaked, not freed under them.
            say!("ringmaster: {leaked} buffer(s) still lent to the kernel were leaked at exit");
        }
        if let Some(p) = self.pool {
            p.stop();
        }
        match panicked {
            Some(id) => Err(Error::ShardPanicked(id)),
            None => Ok(Report { shards }),
        }
    }
}

fn pick_cpu(
    config: &Config,
    cores: &[core_affinity::CoreId],
    shard: usize,
) -> Option<core_affinity::CoreId> {
    match &config.cpus {
        Some(list) => Some(core_affinity::CoreId {
            id: list[shard % list.len()],
        }),
        None if cores.is_empty() => None,
        None => Some(cores[shard % cores.len()]),
    }
}

/// Port 0: the first bind picked a port; every later socket joins it.
fn bound_port(sock: &Socket, addr: SocketAddr) -> SocketAddr {
    if addr.port() != 0 {
        return addr;
    }
    sock.local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock)
}

fn bind_listener(
    addr: SocketAddr,
    backlog: u32,
    defer_accept: Option<Duration>,
) -> std::io::Result<Socket> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    // Accepted sockets inherit it: no setsockopt per connection.
    sock.set_tcp_nodelay(true)?;
    if let Some(wait) = defer_accept {
        fd::set_defer_accept(&sock, wait.as_secs().clamp(1, i32::MAX as u64) as i32)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(sock)
}

/// First SIGINT/SIGTERM: drain. Second: exit at once.
fn spawn_signal_thread(handle: ShutdownHandle) {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = fd::wait_signal();
            say!(
                "ringmaster: {} received, draining (send it again to exit at once)",
                signal_name(sig)
            );
            handle.shutdown();
            let sig = fd::wait_signal();
            say!(
                "ringmaster: second {}, exiting without draining",
                signal_name(sig)
            );
            std::process::exit(1);
        });
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
