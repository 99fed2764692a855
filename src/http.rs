//! Plain HTTP/1.1 GETs against a hard deadline, for the ECS endpoints.
//!
//! Everything identity fetches happens before the workload is exec'd, so one deadline covers all
//! requests together: each attempt runs with ureq's end-to-end (global) timeout set to what is left,
//! which also bounds a server that trickles its answer a byte at a time. Connection refused, 5xx and
//! 429 are what an ECS agent says while it (re)starts or rate-limits, so those are retried with a short
//! backoff while the deadline allows. Bodies are capped: nothing legitimate here is near 1 MiB.
//!
//! Addresses are resolved by [`BoundedResolver`], not ureq's default, which starts a thread for every
//! lookup under a timeout and panics when the thread cannot be created (RLIMIT_NPROC, RLIMIT_AS): the
//! ECS endpoints are IP literals and need no lookup at all, and a host name is looked up on a thread
//! only when one can be had.

use std::time::{Duration, Instant};

/// The largest body read from any endpoint.
pub const MAX_BODY: u64 = 1024 * 1024;

/// First pause between attempts; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(400);

/// A response: status and (capped) body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a GET gave no response.
#[derive(Debug)]
pub enum FetchError {
    /// The deadline passed (including before a first attempt could start).
    Timeout,
    /// The body was larger than [`MAX_BODY`].
    TooLarge,
    /// Connection refused on every attempt.
    Refused,
    /// Anything else: bad URL, reset connection, malformed HTTP, short body.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Timeout => write!(f, "no complete answer within the identity timeout"),
            FetchError::TooLarge => write!(f, "response body larger than {} KiB", MAX_BODY / 1024),
            FetchError::Refused => write!(f, "connection refused"),
            FetchError::Failed(reason) => write!(f, "{reason}"),
        }
    }
}

/// GETs `url` before `deadline`, retrying refused connections, 5xx and 429 with backoff. Returns the
/// last response, whatever its status, once it is not retryable or no time is left to retry.
pub fn get(url: &str, deadline: Instant) -> Result<Response, FetchError> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = attempt(url, deadline);
        let retryable = match &result {
            Ok(response) => response.status >= 500 || response.status == 429,
            Err(FetchError::Refused) => true,
            Err(_) => false,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if !retryable || left <= backoff {
            return result;
        }
        crate::debug!(
            "{url}: {}; retrying in {}ms",
            match &result {
                Ok(response) => format!("HTTP {}", response.status),
                Err(e) => e.to_string(),
            },
            backoff.as_millis()
        );
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn attempt(url: &str, deadline: Instant) -> Result<Response, FetchError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(FetchError::Timeout);
    }
    let agent = ureq::Agent::with_parts(
        ureq::Agent::config_builder()
            .timeout_global(Some(left))
            .http_status_as_error(false)
            // These are link-local or loopback endpoints: a proxy from the environment would be wrong.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("sentinit/", env!("CARGO_PKG_VERSION")))
            // The agent's headers are a few hundred bytes and a GET is one line: ureq's 128 KiB
            // buffers are memory a constrained start (a tight RLIMIT_AS) may not have.
            .max_response_header_size(16 * 1024)
            .input_buffer_size(32 * 1024)
            .output_buffer_size(8 * 1024)
            .build(),
        ureq::unversioned::transport::DefaultConnector::default(),
        BoundedResolver,
    );
    let mut response = agent.get(url).call().map_err(classify)?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(classify)?;
    Ok(Response { status, body })
}

fn classify(error: ureq::Error) -> FetchError {
    match error {
        ureq::Error::Timeout(_) => FetchError::Timeout,
        ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => FetchError::Refused,
        ureq::Error::Io(e)
            if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock =>
        {
            FetchError::Timeout
        }
        other => FetchError::Failed(other.to_string()),
    }
}

/// Resolves IP literals in place and host names on a thread of their own, bounded by ureq's timeout;
/// a thread that cannot be created is an error for this request, never a panic.
#[derive(Debug)]
struct BoundedResolver;

impl ureq::unversioned::resolver::Resolver for BoundedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(80);
        let mut addresses = self.empty();
        // `[::1]` comes with its brackets.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            addresses.push(SocketAddr::new(ip, port));
            return Ok(addresses);
        }
        let name = format!("{host}:{port}");
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || sender.send(name.to_socket_addrs()).ok())
            .map_err(|e| {
                ureq::Error::Io(std::io::Error::other(format!("cannot start a thread to look up {host}: {e}")))
            })?;
        let wait = (*timeout.after).min(Duration::from_secs(3600));
        let found = match receiver.recv_timeout(wait) {
            Ok(result) => result?,
            Err(_) => return Err(ureq::Error::Timeout(timeout.reason)),
        };
        for address in config.ip_family().keep_wanted(found).take(16) {
            addresses.push(address);
        }
        if addresses.is_empty() {
            Err(ureq::Error::HostNotFound)
        } else {
            Ok(addresses)
        }
    }
}
