//! A Rust HTTP client nobody here wrote (ureq) against `ringmaster http`, with its
//! connection pool: every request must reuse one keep-alive connection.

mod http_support;

use http_support::Server;

#[test]
fn ureq_client() {
    let server = Server::start(&[]);
    let agent = ureq::Agent::new_with_defaults();
    for _ in 0..3 {
        let mut r = agent.get(server.url("/plaintext")).call().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body_mut().read_to_string().unwrap(), "Hello, World!");
    }
    let mut r = agent.get(server.url("/json")).call().unwrap();
    assert_eq!(
        r.headers().get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        r.body_mut().read_to_string().unwrap(),
        r#"{"message":"Hello, World!"}"#
    );
    let payload = vec![7u8; 100_000];
    let mut r = agent.post(server.url("/echo")).send(&payload[..]).unwrap();
    assert_eq!(r.body_mut().read_to_vec().unwrap(), payload);
    let mut r = agent.get(server.url("/delay/30")).call().unwrap();
    assert_eq!(r.body_mut().read_to_string().unwrap(), "OK");
    let err = agent.get(server.url("/nope")).call().unwrap_err();
    assert!(matches!(err, ureq::Error::StatusCode(404)), "{err:?}");
    // Keep-alive: every request above went over one pooled connection.
    assert_eq!(server.counter("runtime", "accepted"), 2, "ureq reconnected");
}
