//! The `sentinit` binary: collects argv and the environment and hands over to the library.
//!
//! `no_main` because Rust's own start-up code sets SIGPIPE to ignored (which would leak into the
//! workload and hide what sentinit's parent really set) and installs SIGSEGV/SIGBUS handlers; a PID 1
//! that forwards signals wants neither. It also keeps the binary smaller.
#![no_main]

use std::ffi::{CStr, OsString};

/// Small blocks from a static arena instead of musl's allocator (see sentinit::arena for why).
#[global_allocator]
static ALLOCATOR: sentinit::arena::Arena = sentinit::arena::Arena::new();
use std::os::unix::ffi::OsStringExt;

/// # Safety
/// Called once by the C runtime with its own argc/argv.
#[no_mangle]
pub unsafe extern "C" fn main(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> libc::c_int {
    let args: Vec<OsString> = (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the C runtime passes argc valid, NUL-terminated argv entries.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect();
    // The environment exactly as received, entry by entry: std::env would drop entries it cannot parse.
    let mut environment = Vec::new();
    let mut index = 0;
    // SAFETY: the C runtime passes a NULL-terminated array of NUL-terminated entries as envp.
    while !envp.is_null() && unsafe { !(*envp.add(index)).is_null() } {
        // SAFETY: entry `index` is non-null and NUL-terminated (checked just above).
        environment.push(unsafe { CStr::from_ptr(*envp.add(index)) }.to_bytes().to_vec());
        index += 1;
    }
    let code = sentinit::run(args, sentinit::environ::Environ::from_entries(environment));
    // process::exit runs std's cleanup, which flushes stdout (--help, --version, --identity).
    std::process::exit(code)
}
