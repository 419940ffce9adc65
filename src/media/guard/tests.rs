use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

#[test]
fn only_public_addresses_are_public() {
    for private in [
        "127.0.0.1",
        "127.0.0.2",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
    ] {
        assert!(!is_public(private.parse().unwrap()), "{private}");
    }
    for public in ["1.1.1.1", "93.184.216.34", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
        assert!(is_public(public.parse().unwrap()), "{public}");
    }
}

#[test]
fn urls_are_checked_by_scheme_and_literal_address_unless_trusted() {
    let none = Trusted::default();
    let url = |s: &str| Url::parse(s).unwrap();
    assert_eq!(check_url(&url("ftp://example.org/x"), &none), Err(Refused::Scheme));
    assert_eq!(check_url(&url("file:///etc/passwd"), &none), Err(Refused::Scheme));
    assert!(matches!(check_url(&url("http://127.0.0.2/x"), &none), Err(Refused::Address(_))));
    assert!(matches!(check_url(&url("http://[::ffff:127.0.0.1]/x"), &none), Err(Refused::Address(_))));
    assert!(matches!(check_url(&url("http://169.254.169.254/latest"), &none), Err(Refused::Address(_))));
    assert_eq!(check_url(&url("https://example.org/a.png"), &none), Ok(()), "a name is the resolver's to judge");
    let trusted = Trusted::new(["127.0.0.1".to_owned(), "Fishroom.Local".to_owned()]);
    assert_eq!(check_url(&url("http://127.0.0.1:8080/x"), &trusted), Ok(()));
    assert_eq!(check_url(&url("http://fishroom.local/x"), &trusted), Ok(()));
    assert!(check_url(&url("http://127.0.0.2/x"), &trusted).is_err(), "only the hosts named");
}

/// A server on `ip` that counts its requests, answering each with a body or a redirect to `redirect_to`.
async fn server(ip: &str, redirect_to: Option<String>) -> (SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    let app = axum::Router::new().fallback(move || {
        let (counted, redirect_to) = (Arc::clone(&counted), redirect_to.clone());
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            match redirect_to {
                Some(to) => axum::response::Redirect::temporary(&to).into_response(),
                None => "image bytes".into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, count)
}

use axum::response::IntoResponse;

#[tokio::test]
async fn nothing_is_fetched_from_a_refused_address_first_or_after_a_redirect() {
    let seconds = Duration::from_secs(2);
    let (capture, captured) = server("127.0.0.2", None).await;
    // Straight at a loopback address, by address and by name: refused before anything connects.
    let get = |guard: &Guard, url: String| {
        let (guard, url) = (guard.clone(), Url::parse(&url).unwrap());
        async move { guard.get(&url).await }
    };
    let guarded = Guard::new(Trusted::default(), seconds, seconds);
    assert!(matches!(get(&guarded, format!("http://{capture}/a.png")).await, Err(FetchError::Refused(_))));
    let by_name = get(&guarded, format!("http://localhost:{}/a.png?token=s3cret", capture.port())).await;
    let said = by_name.expect_err("refused by the resolver").to_string();
    assert!(!said.contains("s3cret"), "no query string in what is said: {said}");
    // A trusted host (an account's own server on 127.0.0.1) is fetched; its redirects to refused addresses are not
    // followed: to 127.0.0.2 by address, to the IPv4-mapped form of loopback, to a name that resolves to loopback.
    let trusted = Trusted::new(["127.0.0.1".to_owned()]);
    let guarded = Guard::new(trusted, seconds, seconds);
    let (own, _) = server("127.0.0.1", None).await;
    let answer = get(&guarded, format!("http://{own}/a.png")).await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "image bytes");
    for to in [
        format!("http://{capture}/a.png"),
        format!("http://[::ffff:127.0.0.2]:{}/a.png", capture.port()),
        format!("http://localhost:{}/a.png", capture.port()),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let (redirecting, _) = server("127.0.0.1", Some(to.clone())).await;
        let answer = get(&guarded, format!("http://{redirecting}/a.png")).await;
        assert!(answer.is_err(), "followed a redirect to {to}");
    }
    assert_eq!(captured.load(Ordering::SeqCst), 0, "nothing reached the refused address");
}
