//! What the credential sources share: the error a failed fetch reports, and
//! a cached credential refreshed by one caller at a time.
//!
//! [`Refreshing`] holds the current value and the instant it goes stale.
//! A caller that finds it fresh takes it without waiting (a std mutex held
//! for a clone); a caller that finds it stale takes the async refresh lock,
//! checks again (another caller may just have refreshed), and fetches. The
//! std mutex is never held across an await; the refresh lock is held only
//! around the fetch, never across an upstream call.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Why no credential could be had. Messages never contain a key, a token or
/// the credential endpoint's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The credentials (file, profile, environment) are missing, unreadable
    /// or not understood.
    Credentials(String),
    /// The credential endpoint refused (HTTP status) or answered nonsense.
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// The credential endpoint could not be reached.
    Unavailable(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Credentials(m) | AuthError::Unavailable(m) => f.write_str(m),
            AuthError::Refused { message, .. } => f.write_str(message),
        }
    }
}

/// A cached credential with single-flight refresh.
pub(crate) struct Refreshing<T> {
    cached: Mutex<Option<(T, Instant)>>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl<T: Clone> Refreshing<T> {
    pub(crate) fn new() -> Refreshing<T> {
        Refreshing {
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many fetches ran.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub(crate) fn fresh(&self, now: Instant) -> Option<T> {
        let guard = self.cached.lock().ok()?;
        guard
            .as_ref()
            .filter(|(_, stale_at)| now < *stale_at)
            .map(|(v, _)| v.clone())
    }

    /// The cached value while fresh, else the result of `fetch`, which
    /// returns the value and how long it may be used (counted from the start
    /// of the fetch).
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<T, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Duration), AuthError>>,
    {
        if let Some(v) = self.fresh(Instant::now()) {
            return Ok(v);
        }
        // One refresh at a time; whoever waited finds the new value cached.
        let _refreshing = self.refresh.lock().await;
        if let Some(v) = self.fresh(Instant::now()) {
            return Ok(v);
        }
        let started = Instant::now();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (value, usable_for) = fetch().await?;
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((value.clone(), started + usable_for));
        }
        Ok(value)
    }

    /// Forgets the cached value if `is_it` says it is the one a caller saw
    /// refused, so the next caller fetches anew.
    pub(crate) fn invalidate_if(&self, is_it: impl Fn(&T) -> bool) {
        if let Ok(mut guard) = self.cached.lock()
            && guard.as_ref().is_some_and(|(v, _)| is_it(v))
        {
            *guard = None;
        }
    }
}

/// `application/x-www-form-urlencoded` (RFC 1866 §8.2.1 as browsers do it).
pub(crate) fn form_urlencode(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn one_fetch_for_concurrent_callers_until_stale() {
        let r = Arc::new(Refreshing::<u32>::new());
        let calls = Arc::new(AtomicU64::new(0));
        let get = |r: Arc<Refreshing<u32>>, calls: Arc<AtomicU64>| async move {
            r.get(|| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let n = calls.fetch_add(1, Ordering::SeqCst) as u32;
                Ok((n, Duration::from_secs(60)))
            })
            .await
        };
        let (a, b) = tokio::join!(get(r.clone(), calls.clone()), get(r.clone(), calls.clone()));
        assert_eq!((a.unwrap(), b.unwrap()), (0, 0));
        assert_eq!(r.fetches(), 1);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(get(r.clone(), calls.clone()).await.unwrap(), 1);
        r.invalidate_if(|v| *v == 0);
        assert_eq!(
            get(r.clone(), calls.clone()).await.unwrap(),
            1,
            "not the cached one"
        );
        r.invalidate_if(|v| *v == 1);
        assert_eq!(get(r.clone(), calls.clone()).await.unwrap(), 2);
        // A failed fetch caches nothing.
        r.invalidate_if(|_| true);
        let e = r
            .get(|| async { Err::<(u32, Duration), _>(AuthError::Unavailable("down".into())) })
            .await;
        assert_eq!(e, Err(AuthError::Unavailable("down".into())));
        assert_eq!(get(r.clone(), calls).await.unwrap(), 3);
    }
}
