//! A TCP load balancer in front of several proxy instances: it listens on
//! a set of ports and forwards each connection to the same port on one of
//! its backends, the one new connections go to at that moment. A test
//! moves new connections to another backend and cuts the open ones, as a
//! load balancer does when an instance is drained.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Balancer {
    to: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    /// Listens on `host`:`port` for each of `ports` and forwards to the
    /// same port on `backends[0]` until told otherwise.
    pub fn start(host: &str, ports: &[u16], backends: &[&str]) -> Balancer {
        let balancer = Balancer {
            to: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let backends: Arc<Vec<String>> = Arc::new(backends.iter().map(|b| b.to_string()).collect());
        for port in ports {
            let listener = TcpListener::bind((host, *port))
                .unwrap_or_else(|e| panic!("balancer cannot listen on {host}:{port}: {e}"));
            let (to, open, stop) = (
                balancer.to.clone(),
                balancer.open.clone(),
                balancer.stop.clone(),
            );
            let (backends, port) = (backends.clone(), *port);
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let backend = &backends[to.load(Ordering::SeqCst) % backends.len()];
                    let Ok(server) = TcpStream::connect((backend.as_str(), port)) else {
                        continue; // the client sees its connection close
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                        let mut open = open.lock().unwrap();
                        open.push(c);
                        open.push(s);
                    }
                    pipe(&client, &server);
                    pipe(&server, &client);
                }
            });
        }
        balancer
    }

    /// New connections go to backend `i` from now on.
    pub fn send_to(&self, i: usize) {
        self.to.store(i, Ordering::SeqCst);
    }

    /// Closes every open connection, both ways.
    pub fn cut(&self) {
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// Copies what `from` sends to `to` until either end closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}
