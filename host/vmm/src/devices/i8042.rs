//! A minimal i8042 keyboard controller: enough for Linux's probe, and the CPU reset command
//! (`0xfe` to port 0x64) that `reboot=k` uses, which ends the VM.

use super::BusDevice;

/// Port base (0x60 data, 0x64 command/status).
pub const I8042_BASE: u64 = 0x60;
/// Port range length.
pub const I8042_LEN: u64 = 5;
const CMD_RESET_CPU: u8 = 0xfe;

/// The i8042 device; `on_reset` runs when the guest asks for a CPU reset.
pub struct I8042 {
    on_reset: Box<dyn Fn() + Send>,
}

impl I8042 {
    /// A controller that calls `on_reset` on a reset command.
    pub fn new(on_reset: Box<dyn Fn() + Send>) -> Self {
        Self { on_reset }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status 0: no data, input buffer empty.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 4 && data.first() == Some(&CMD_RESET_CPU) {
            (self.on_reset)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn reset_command_fires() {
        let hit = Arc::new(AtomicBool::new(false));
        let h = hit.clone();
        let mut dev = I8042::new(Box::new(move || h.store(true, Ordering::SeqCst)));
        dev.write(0, &[CMD_RESET_CPU]);
        assert!(!hit.load(Ordering::SeqCst));
        dev.write(4, &[CMD_RESET_CPU]);
        assert!(hit.load(Ordering::SeqCst));
    }
}
