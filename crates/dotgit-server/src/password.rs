//! Password checks off the request path: argon2id costs tens of milliseconds of CPU and 19 MiB
//! of memory per check, on purpose. Checks run on a small pool of dedicated threads with a lower
//! scheduling priority (nice +10), so that on a busy core the kernel gives API requests the CPU
//! first (a key request's p99 must not follow the sign-in rate), and so that a flood of sign-ins
//! queues for two threads instead of taking every blocking thread and gigabytes of memory.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;

/// Threads checking passwords (each holds argon2's 19 MiB while it works).
const THREADS: usize = 2;
/// How much nicer than the rest of the server those threads are.
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

fn pool() -> &'static mpsc::Sender<Job> {
    static POOL: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dotgit-password-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password thread");
            }
        }
        tx
    })
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // two syscalls with no memory arguments; there is no safe wrapper in std
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread; failure only leaves the priority as it was.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if r != 0 {
        tracing::debug!("could not lower the password threads' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Runs `f` on a password thread and waits for it without blocking the async worker.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    pool().send(job).ok()?;
    rx.await.ok()
}

/// Whether `password` matches the stored PHC string, checked on a password thread.
pub async fn verify(password: String, phc: String) -> bool {
    run(move || crate::ops::verify_password(&password, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn checks_run_on_the_password_threads() {
        let phc = crate::ops::hash_password("correct horse").unwrap();
        assert!(super::verify("correct horse".into(), phc.clone()).await);
        assert!(!super::verify("wrong horse".into(), phc).await);
        let name = super::run(|| std::thread::current().name().map(str::to_owned))
            .await
            .flatten();
        assert!(name.unwrap().starts_with("dotgit-password-"));
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    #[tokio::test]
    async fn the_password_threads_are_nicer() {
        let nice = super::run(|| unsafe {
            libc::getpriority(
                libc::PRIO_PROCESS,
                libc::syscall(libc::SYS_gettid) as libc::id_t,
            )
        })
        .await
        .unwrap();
        let ours = unsafe {
            libc::getpriority(
                libc::PRIO_PROCESS,
                libc::syscall(libc::SYS_gettid) as libc::id_t,
            )
        };
        assert_eq!(nice, ours + super::NICE);
    }
}
