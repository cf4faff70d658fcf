//! A raw PostgreSQL protocol client for tests that must see the exact
//! messages a server sends.

use super::TestServer;

/// A minimal raw protocol client: tokio-postgres only sends valid UTF-8,
/// and hides which messages the server answered with.
pub struct Raw {
    stream: std::net::TcpStream,
}

impl Raw {
    /// A session on `server` as its superuser.
    pub fn open(server: &TestServer) -> Raw {
        Raw::connect(
            server.host(),
            server.port(),
            server.options().superuser_name(),
            "freshet",
        )
    }

    /// A session on the PostgreSQL named by `SLT_REFERENCE_URL`
    /// (`host=… port=… user=…`, trust authentication), if it is set.
    pub fn reference() -> Option<Raw> {
        let (host, port, user) = super::reference_address()?;
        Some(Raw::connect(&host, port, &user, "postgres"))
    }

    /// Runs `sql` with the simple protocol and panics on an error.
    pub fn execute(&mut self, sql: &str) {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(b'Q', &body);
        let (_, error) = self.until_ready();
        assert!(error.is_none(), "{sql}: {error:?}");
    }

    /// A session as `user` on `database`, with no authentication exchange
    /// beyond AuthenticationOk.
    pub fn connect(host: &str, port: u16, user: &str, database: &str) -> Raw {
        let stream = std::net::TcpStream::connect((host, port)).expect("connect");
        // a bound on a test that would otherwise hang, not a timing assertion
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .expect("read timeout");
        let mut raw = Raw { stream };
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for field in ["user", user, "database", database] {
            body.extend_from_slice(field.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut startup = i32::try_from(body.len() + 4)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        startup.extend_from_slice(&body);
        raw.write(&startup);
        while raw.next_message().0 != b'Z' {}
        raw
    }

    pub fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, kind: u8, body: &[u8]) {
        let mut m = vec![kind];
        m.extend_from_slice(&i32::try_from(body.len() + 4).unwrap().to_be_bytes());
        m.extend_from_slice(body);
        self.write(&m);
    }

    pub fn next_message(&mut self) -> (u8, Vec<u8>) {
        use std::io::Read;
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).expect("message header");
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let mut body = vec![0u8; usize::try_from(len - 4).unwrap()];
        self.stream.read_exact(&mut body).expect("message body");
        (header[0], body)
    }

    /// Message types up to and including ReadyForQuery, and the SQLSTATE
    /// and message of the ErrorResponse among them.
    pub fn until_ready(&mut self) -> (Vec<u8>, Option<(String, String)>) {
        let mut kinds = Vec::new();
        let mut error = None;
        loop {
            let (kind, body) = self.next_message();
            kinds.push(kind);
            if kind == b'E' {
                let mut code = String::new();
                let mut message = String::new();
                for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
                    let text = String::from_utf8_lossy(&field[1..]).into_owned();
                    match field[0] {
                        b'C' => code = text,
                        b'M' => message = text,
                        _ => {}
                    }
                }
                error = Some((code, message));
            }
            if kind == b'Z' {
                return (kinds, error);
            }
        }
    }
}
