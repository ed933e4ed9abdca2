//! The shard's control plane: its wake eventfd and mailbox (shutdown, offload results,
//! cross-shard messages), the graceful drain, and the final quiescing before exit.

use std::mem;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::*;

impl<H: Handler> Shard<H> {
    // ---- wake and shutdown -----------------------------------------------------

    pub(super) fn arm_wake(&mut self) {
        if !self.wake_armed {
            self.ring.read_eventfd(
                self.wake_fd.as_raw_fd(),
                &mut self.wake_buf,
                pack_shard(OpKind::Wake),
            );
            self.wake_armed = true;
        }
    }

    pub(super) fn on_wake(&mut self, res: i32) {
        self.wake_armed = false;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                ShardMsg::Shutdown => self.begin_drain(),
                ShardMsg::User(msg) => self.on_message(msg),
                ShardMsg::OffloadDone { token, result } => {
                    self.ctx.offload_pending = self.ctx.offload_pending.saturating_sub(1);
                    match &result {
                        Ok(_) => self.ctx.counters.offload_completed += 1,
                        Err(_) => self.ctx.counters.offload_panicked += 1,
                    }
                    let Shard {
                        slots,
                        ctx,
                        handler,
                        ..
                    } = self;
                    let Some(slot) = live(slots, token) else {
                        // The connection closed meanwhile: drop the result.
                        ctx.counters.offload_dropped += 1;
                        continue;
                    };
                    if slot.io.phase != Phase::Open || slot.io.abort_requested {
                        ctx.counters.offload_dropped += 1;
                        continue;
                    }
                    if let Some(app) = slot.app.as_mut() {
                        let mut io = Io::new(&mut slot.io, ctx);
                        handler.on_offload_done(app, result, &mut io);
                    }
                    ctx.note_output(&mut slot.io);
                }
            }
        }
        if res != -libc::ECANCELED && !self.exiting {
            self.arm_wake();
        }
    }

    pub(super) fn on_message(&mut self, msg: Message) {
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        let mut visit = |f: &mut ConnFn<'_, H::Conn>| {
            for (_, slot) in slots.iter_mut() {
                if slot.io.phase != Phase::Open || slot.io.abort_requested {
                    continue;
                }
                if let Some(app) = slot.app.as_mut() {
                    let mut io = Io::new(&mut slot.io, ctx);
                    f(app, &mut io);
                }
                ctx.note_output(&mut slot.io);
            }
        };
        let mut conns = Conns { visit: &mut visit };
        handler.on_message(&msg, &mut conns);
    }

    pub(super) fn begin_drain(&mut self) {
        if self.ctx.draining {
            return;
        }
        self.ctx.draining = true;
        if self.accept_armed {
            self.cancel_accept();
        } else {
            self.listener = None;
        }
        if self.udp.as_ref().is_some_and(|p| p.recv_armed) {
            self.ring
                .cancel_user_data(pack_shard(OpKind::UdpRecv), pack_shard(OpKind::Cancel));
        }
        let keys: Vec<usize> = self.slots.iter().map(|(k, _)| k).collect();
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        for k in keys {
            let slot = &mut slots[k];
            if slot.io.phase == Phase::Open && !slot.io.abort_requested {
                if let Some(app) = slot.app.as_mut() {
                    let mut io = Io::new(&mut slot.io, ctx);
                    handler.on_shutdown(app, &mut io);
                }
            } else if slot.io.phase == Phase::Lingering {
                slot.io.abort_requested = true;
            }
            ctx.note_output(&mut slot.io);
        }
        let deadline = self.ctx.config.drain_timeout;
        self.ctx
            .timers
            .insert(self.ctx.now, deadline, TimerEvent::DrainDeadline);
    }

    pub(super) fn force_close_all(&mut self) {
        let Shard { slots, ctx, .. } = self;
        for (_, slot) in slots.iter_mut() {
            if slot.io.phase != Phase::Closed {
                if slot.io.phase != Phase::Lingering {
                    ctx.counters.drain_forced += 1;
                }
                slot.io.abort(Close::Shutdown);
                ctx.note_output(&mut slot.io);
            }
        }
    }

    /// Waits for the last operations (the wake read), then releases the buffer ring
    /// while the ring is still alive.
    pub(super) fn finish(mut self) -> Counters {
        if self.wake_armed {
            self.ring
                .cancel_user_data(pack_shard(OpKind::Wake), pack_shard(OpKind::Cancel));
            let start = Instant::now();
            while self.wake_armed && start.elapsed() < Duration::from_secs(2) {
                let _ = self.ring.submit_and_wait(Some(Duration::from_millis(50)));
                let mut cqes = mem::take(&mut self.cqes);
                self.ring.reap(&mut cqes);
                for cqe in cqes.drain(..) {
                    if cqe.user_data() == pack_shard(OpKind::Wake) {
                        self.wake_armed = false;
                    }
                }
                self.cqes = cqes;
            }
        }
        let _ = self.ring.submit();
        self.bufs.unregister(&self.ring);
        if let Some(p) = self.udp.as_mut() {
            p.bufs.unregister(&self.ring);
        }
        mem::take(&mut self.ctx.counters)
    }
}
