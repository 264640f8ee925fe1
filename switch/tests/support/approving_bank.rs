//! A bank that approves every leg (39 = `00`, 38 = an authorization code) and records what it
//! saw: for journeys whose subject is the switch's side (refunds, holds, totals, the ledger),
//! not the bank's answers.

#![allow(dead_code)]

use async_trait::async_trait;
use hsm_sim::keys::Zpk;
use schemas::domain::{InstitutionId, Stan};
use schemas::iso8583::{self, OwnedMessage};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use switch::issuer::gateway::{BankGateway, GatewayError};
use switch::sim::world::DemoWorld;

/// Approves every leg of the world's banks.
pub struct ApprovingBank {
    zpks: HashMap<InstitutionId, Zpk>,
    stan: AtomicU32,
    /// (field 3, field 4) of every leg, in order.
    pub seen: Mutex<Vec<(String, u64)>>,
}

impl ApprovingBank {
    /// The banks of `world`, with their ZPKs.
    pub fn of(world: &DemoWorld) -> ApprovingBank {
        let zpks = world
            .banks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id.clone(), world.bank_keys(i).unwrap().1))
            .collect();
        ApprovingBank {
            zpks,
            stan: AtomicU32::new(1),
            seen: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl BankGateway for ApprovingBank {
    async fn send(
        &self,
        _bank: &InstitutionId,
        request: OwnedMessage<'static>,
        _timeout: Duration,
    ) -> Result<OwnedMessage<'static>, GatewayError> {
        self.seen.lock().unwrap().push((
            request.get_str(3).unwrap().into_owned(),
            request.get_u64(4).unwrap(),
        ));
        let spec = iso8583::spec("ssc87").unwrap();
        let mut wire = Vec::new();
        spec.encode(&request, &mut wire).unwrap();
        let mut answer = spec.decode(&wire).unwrap().to_response().unwrap();
        answer
            .set_str(39, "00")
            .unwrap()
            .set_str(38, "B12345")
            .unwrap();
        let mut out = Vec::new();
        spec.encode(&answer, &mut out).unwrap();
        let owned: &'static [u8] = Box::leak(out.into_boxed_slice());
        Ok(spec.decode(owned).unwrap().to_owned_message())
    }

    fn is_up(&self, _bank: &InstitutionId) -> bool {
        true
    }

    fn zpk(&self, bank: &InstitutionId) -> Option<Zpk> {
        self.zpks.get(bank).cloned()
    }

    fn next_stan(&self, _bank: &InstitutionId) -> Stan {
        Stan::new(self.stan.fetch_add(1, Ordering::Relaxed) % 999_999 + 1).unwrap()
    }
}
