//! The demo network around the switch: the seeded world ([`world`]) and simulated kiosks
//! ([`kiosk`]) with virtual cards. `switch demo` runs them; tests and the load generator reuse
//! them so what they exercise is what the demo shows.

pub mod kiosk;
pub mod run;
pub mod world;
