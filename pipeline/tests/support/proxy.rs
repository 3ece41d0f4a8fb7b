//! A TCP proxy that can fail on command: the network between two services, for fault tests.
//!
//! While up it relays bytes both ways. [`FaultProxy::cut`] closes every open connection at once
//! (clients see an early EOF, mid-request if one was under way) and closes each new
//! connection as soon as it is accepted, as a dead host behind a live load balancer would.
//! [`FaultProxy::restore`] lets connections through again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    accept_loop: tokio::task::JoinHandle<()>,
}

struct Shared {
    up: AtomicBool,
    /// Cancelled by `cut`: every connection relayed so far ends.
    generation: Mutex<CancellationToken>,
    /// Connections closed because the proxy was cut.
    refused: AtomicU64,
}

impl FaultProxy {
    /// Relays `127.0.0.1:<new port>` to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared {
            up: AtomicBool::new(true),
            generation: Mutex::new(CancellationToken::new()),
            refused: AtomicU64::new(0),
        });
        let accept_loop = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !shared.up.load(Ordering::SeqCst) {
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                        continue;
                    }
                    let cut = shared.generation.lock().expect("not poisoned").clone();
                    tokio::spawn(relay(client, upstream, cut));
                }
            }
        });
        FaultProxy {
            url,
            shared,
            accept_loop,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every open connection and every new one until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        let mut generation = self.shared.generation.lock().expect("not poisoned");
        generation.cancel();
        *generation = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }

    /// Connections closed on arrival while the proxy was cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.shared
            .generation
            .lock()
            .expect("not poisoned")
            .cancel();
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, cut: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = cut.cancelled() => {}
    }
}
