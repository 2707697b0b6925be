//! The 16550 UART at COM1 (`vm-superio`), writing guest output to a file, stdout, a buffer or
//! nowhere, and raising IRQ 4 through an eventfd (an irqfd when the in-kernel irqchip exists).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::BusDevice;
use crate::config::SerialOutput;

/// COM1 base port.
pub const COM1_BASE: u64 = 0x3f8;
/// COM1 port range length.
pub const COM1_LEN: u64 = 8;
/// COM1 IRQ.
pub const COM1_IRQ: u32 = 4;

/// An [`EventFd`] used as the UART's interrupt line.
pub struct EventFdTrigger(pub EventFd);

impl Trigger for EventFdTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::devices::bus::lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens the writer for a [`SerialOutput`].
pub fn open_output(out: &SerialOutput) -> io::Result<Box<dyn Write + Send>> {
    Ok(match out {
        SerialOutput::Sink => Box::new(io::sink()),
        SerialOutput::Stdout => Box::new(io::stdout()),
        SerialOutput::File(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        SerialOutput::Buffer(b) => Box::new(SharedBuffer(b.clone())),
    })
}

/// The COM1 device.
pub struct SerialDevice {
    uart: Serial<EventFdTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    /// A UART writing to `out` and signalling `irq`.
    pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> Self {
        Self {
            uart: Serial::new(EventFdTrigger(irq), out),
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if let (Some(first), Ok(off)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.uart.read(off);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Some(&first), Ok(off)) = (data.first(), u8::try_from(offset)) {
            if let Err(e) = self.uart.write(off, first) {
                tracing::debug!("serial write: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_reaches_the_buffer() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let out = open_output(&SerialOutput::Buffer(buf.clone())).unwrap();
        let mut dev = SerialDevice::new(EventFd::new(libc::EFD_NONBLOCK).unwrap(), out);
        for b in b"hi" {
            dev.write(0, &[*b]);
        }
        assert_eq!(&*buf.lock().unwrap(), b"hi");
        let mut lsr = [0u8];
        dev.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "THR empty");
    }
}
