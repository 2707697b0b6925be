//! The device thread: one epoll loop over the virtio queue ioeventfds, device backend fds
//! (the vsock muxer's epoll fd), the VM's exit eventfd and, with the in-kernel irqchip, the
//! halt watch's timerfd ([`crate::halt`]).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use seccompiler::BpfProgram;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use crate::devices::bus::lock;
use crate::exit::VmShared;
use crate::virtio::VirtioDevice;

const EXIT_TOKEN: u64 = 0;
/// Device tokens start at `1 << 16`.
const HALT_TICK_TOKEN: u64 = 1;
const BACKEND_QUEUE: u64 = 0xffff;

/// A virtio device and the eventfds KVM signals when the guest notifies its queues.
pub struct DeviceHandle {
    /// The device.
    pub device: Arc<Mutex<dyn VirtioDevice>>,
    /// One ioeventfd per queue, in queue order.
    pub queue_evts: Vec<EventFd>,
}

/// The epoll loop.
pub struct EventLoop {
    epoll: Epoll,
    shared: Arc<VmShared>,
    devices: Vec<DeviceHandle>,
    /// Ticks every [`crate::halt::KICK_PERIOD`] when the VM has a halt watch.
    halt_timer: Option<TimerFd>,
}

fn token(device: usize, queue: u64) -> u64 {
    ((device as u64 + 1) << 16) | queue
}

impl EventLoop {
    pub(crate) fn new(shared: Arc<VmShared>, devices: Vec<DeviceHandle>) -> std::io::Result<Self> {
        let epoll = Epoll::new()?;
        let add = |fd, data| {
            epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, data),
            )
        };
        add(shared.exit_evt.as_raw_fd(), EXIT_TOKEN)?;
        let halt_timer = match shared.halt_watch() {
            Some(_) => {
                let mut timer = TimerFd::new()?;
                let period = crate::halt::KICK_PERIOD;
                timer.reset(period, Some(period))?;
                add(timer.as_raw_fd(), HALT_TICK_TOKEN)?;
                Some(timer)
            }
            None => None,
        };
        for (d, handle) in devices.iter().enumerate() {
            for (q, evt) in handle.queue_evts.iter().enumerate() {
                add(evt.as_raw_fd(), token(d, q as u64))?;
            }
            if let Some(fd) = lock(&handle.device).backend_fd() {
                add(fd, token(d, BACKEND_QUEUE))?;
            }
        }
        Ok(Self {
            epoll,
            shared,
            devices,
            halt_timer,
        })
    }

    /// Runs the loop on its own thread; with `seccomp`, the thread installs that filter
    /// before it serves anything.
    pub(crate) fn spawn(self, seccomp: Option<BpfProgram>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("vmm-devices".into())
            .spawn(move || {
                if let Some(program) = seccomp {
                    if let Err(e) = crate::seccomp::apply(&program) {
                        self.shared
                            .request_exit(crate::ExitReason::Error(format!("device thread: {e}")));
                        return;
                    }
                }
                self.run()
            })
    }

    /// A halt-watch period passed; true when the guest halted for good (the VM is ending).
    fn halt_tick(&mut self) -> bool {
        if let Some(timer) = &mut self.halt_timer {
            // Readable, so this does not block; it only resets the expiry count.
            let _ = timer.wait();
        }
        match self.shared.halt_watch() {
            Some(watch) if watch.tick() => {
                tracing::debug!("every vCPU is halted with interrupts off");
                self.shared.request_exit(crate::ExitReason::Halted);
                true
            }
            _ => false,
        }
    }

    fn run(mut self) {
        let mut events = vec![EpollEvent::default(); 64];
        loop {
            let n = match self.epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.shared
                        .request_exit(crate::ExitReason::Error(format!("device epoll: {e}")));
                    return;
                }
            };
            for ev in &events[..n] {
                let data = ev.data();
                if data == EXIT_TOKEN || self.shared.should_stop() {
                    return;
                }
                if data == HALT_TICK_TOKEN {
                    if self.halt_tick() {
                        return;
                    }
                    continue;
                }
                let d = (data >> 16) as usize - 1;
                let q = data & 0xffff;
                let Some(handle) = self.devices.get(d) else {
                    continue;
                };
                if q == BACKEND_QUEUE {
                    lock(&handle.device).process_backend();
                } else if let Some(evt) = handle.queue_evts.get(q as usize) {
                    // Drain the counter; a failed read only means it was already drained.
                    let _ = evt.read();
                    lock(&handle.device).process_queue(q as usize);
                }
            }
        }
    }
}
