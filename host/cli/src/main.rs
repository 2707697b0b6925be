//! The vmrun command-line interface.

fn main() {
    // SAFETY: called first thing in main, before any other thread exists;
    // restoring the default SIGPIPE disposition makes `vmrun ps | head`
    // end quietly like other Unix tools instead of panicking in println!.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = vmrun_cli::run_cli(std::env::args_os());
    std::process::exit(code);
}
