//! `echo-baseline`: what a bare tokio server costs per message on this machine, so the switch's
//! runs can be reported as a multiple of it (issue 27, "the floor on this machine").
//!
//! The server is the least a framed TCP service does: read a frame with a 2-byte big-endian
//! length (the switch's ISO 8583 framing), write it back, nothing else. The load is the
//! switch's closed loop: 16 connections with 16 frames of 300 bytes in flight on each. The
//! server runs as a child process (the same binary, `--serve`), so its CPU is read apart from
//! the client's in `/proc/PID/stat`; both share the machine's cores, as loadgen and the switch
//! do. It prints messages per second and the server's and the client's CPU per message.
//!
//! ```sh
//! cargo run --release -p echo-baseline -- --connections 16 --window 16 --body 300 --duration 10
//! ```

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[derive(Parser, Debug)]
#[command(name = "echo-baseline", about = "Framed-echo baseline of this machine")]
struct Args {
    /// Run as the server on 127.0.0.1:PORT (0: any free port), printing `listening PORT`.
    #[arg(long)]
    serve: Option<u16>,
    /// Client connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Frames in flight per connection.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Frame body bytes (after the 2-byte length).
    #[arg(long, default_value_t = 300)]
    body: usize,
    /// Seconds of load (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// The switch's framing: a 2-byte big-endian length, then the body.
fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(u16::MAX as usize)
        .new_codec()
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux x86-64).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// User + system CPU seconds of a process so far (all its threads).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS_PER_S)
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            let (mut sink, mut stream) = Framed::new(socket, codec()).split();
            // Frames read together leave in one write: feed each, flush when none is ready.
            while let Some(Ok(frame)) = stream.next().await {
                if sink.feed(frame.freeze()).await.is_err() {
                    return;
                }
                while let Some(Some(Ok(frame))) =
                    futures_util::FutureExt::now_or_never(stream.next())
                {
                    if sink.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One client connection: `window` frames in flight, one sent per one answered.
async fn client(
    port: u16,
    window: usize,
    body: Bytes,
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let socket = TcpStream::connect(("127.0.0.1", port)).await?;
    socket.set_nodelay(true)?;
    let (mut sink, mut stream) = Framed::new(socket, codec()).split();
    for _ in 0..window {
        sink.feed(body.clone()).await?;
    }
    sink.flush().await?;
    while let Some(frame) = stream.next().await {
        let frame = frame?;
        if frame.len() != body.len() {
            return Err(std::io::Error::other("echo changed the frame"));
        }
        answered.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        sink.send(body.clone()).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if let Some(port) = args.serve {
        return serve(port).await;
    }
    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--serve", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let server_pid = server
        .id()
        .ok_or_else(|| std::io::Error::other("server exited"))?
        .to_string();
    let mut lines = tokio::io::BufReader::new(
        server
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("server stdout"))?,
    )
    .lines();
    let port: u16 = lines
        .next_line()
        .await?
        .and_then(|l| l.strip_prefix("listening ").and_then(|p| p.parse().ok()))
        .ok_or_else(|| std::io::Error::other("server did not say its port"))?;

    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let body = Bytes::from(vec![0x5a; args.body]);
    let clients: Vec<_> = (0..args.connections)
        .map(|_| {
            tokio::spawn(client(
                port,
                args.window,
                body.clone(),
                answered.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (n0, t0) = (answered.load(Ordering::Relaxed), Instant::now());
    let (s0, c0) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let (n1, wall) = (answered.load(Ordering::Relaxed), t0.elapsed());
    let (s1, c1) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    stop.store(true, Ordering::Relaxed);
    let messages = (n1 - n0) as f64;
    let per_message_us = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2} µs", (b - a) * 1e6 / messages),
        _ => "n/a".to_owned(),
    };
    println!(
        "echo: {} connections x {} in flight, {}-byte bodies: {:.0} messages/s over {:.1} s; \
         server CPU {} per message, client CPU {} per message",
        args.connections,
        args.window,
        args.body,
        messages / wall.as_secs_f64(),
        wall.as_secs_f64(),
        per_message_us(s0, s1),
        per_message_us(c0, c1),
    );
    for c in clients {
        c.abort();
    }
    server.kill().await?;
    Ok(())
}
