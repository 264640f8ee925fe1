//! A coverage-less campaign for stable toolchains: mutate the corpus inputs at random and run
//! the target on each mutant for a fixed time. Weaker than libFuzzer's coverage guidance (it
//! cannot climb towards new branches), but it needs no nightly flags and finds the shallow
//! panics: lengths that lie, truncations, digits where letters belong.

use std::time::{Duration, Instant};

/// What a campaign did.
#[derive(Debug, Default)]
pub struct CampaignReport {
    /// Inputs run.
    pub executions: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Inputs that panicked, with the panic's message (at most 16 kept).
    pub crashes: Vec<(Vec<u8>, String)>,
}

/// xorshift64*: enough randomness for mutations, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that often sit on a parser's edges.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, b'0', b'9', b' ', b'F', 0x30, 0x39,
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    input.insert(i, rng.next() as u8);
                }
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = (1 + rng.below(16)).min(len - i);
                input.drain(i..i + n);
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 if !seeds.is_empty() => {
                // Splice: the head of this input, the tail of another.
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                let i = rng.below(len);
                input[i] = b'0' + rng.below(10) as u8;
            }
            8 if len > 1 => {
                // Duplicate a chunk in place (repeated fields, long lengths).
                let i = rng.below(len);
                let n = (1 + rng.below(32)).min(len - i);
                let chunk = input[i..i + n].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            _ => input.push(rng.next() as u8),
        }
    }
    input.truncate(64 * 1024);
}

/// How long a campaign runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// For this long (a campaign).
    Time(Duration),
    /// This many executions, from this random seed (reproducible; the tests).
    Executions(u64, u64),
}

/// Runs `body` on random mutants of `seeds` (and on random bytes now and then, or always when
/// there are no seeds) until the budget is spent.
pub fn campaign(seeds: &[Vec<u8>], budget: Budget, body: &dyn Fn(&[u8])) -> CampaignReport {
    let start = Instant::now();
    let seed = match budget {
        Budget::Executions(_, seed) => seed,
        Budget::Time(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    };
    let mut rng = Rng(seed | 1);
    let mut report = CampaignReport::default();
    let mut input = Vec::new();
    let spent = |r: &CampaignReport| match budget {
        Budget::Time(d) => start.elapsed() >= d,
        Budget::Executions(n, _) => r.executions >= n,
    };
    while !spent(&report) {
        input.clear();
        if seeds.is_empty() || rng.below(16) == 0 {
            let n = rng.below(256);
            input.extend((0..n).map(|_| rng.next() as u8));
        } else {
            input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        }
        mutate(&mut rng, seeds, &mut input);
        report.executions += 1;
        if let Err(msg) = crate::run_one(body, &input) {
            if report.crashes.len() < 16 {
                report.crashes.push((input.clone(), msg));
            }
        }
    }
    report.elapsed = start.elapsed();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_finds_a_shallow_panic_and_counts_its_executions() {
        let seeds = vec![b"ABCD".to_vec()];
        let body = |d: &[u8]| assert!(!d.starts_with(b"AB0"), "found it");
        let report = campaign(&seeds, Budget::Executions(200_000, 28), &body);
        assert_eq!(report.executions, 200_000);
        assert!(
            report
                .crashes
                .iter()
                .any(|(d, m)| d.starts_with(b"AB0") && m == "found it"),
            "{} executions found nothing",
            report.executions
        );
    }

    #[test]
    fn mutants_stay_bounded() {
        let mut rng = Rng(7);
        let seeds = vec![vec![1u8; 60_000]];
        let mut input = seeds[0].clone();
        for _ in 0..200 {
            mutate(&mut rng, &seeds, &mut input);
            assert!(input.len() <= 64 * 1024);
        }
    }
}
