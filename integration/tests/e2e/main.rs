//! The end-to-end suite: one binary, one module per concern, every test on
//! real processes on a loopback range of its own.

mod ack_tests;
mod browser_tests;
mod chat_tests;
mod client_tests;
mod dns_tests;
mod farm_tests;
mod fault_tests;
mod hostile_tests;
mod netns_owner_tests;
mod netns_tests;
mod nick_tests;
mod presence_tests;
mod rebalance_tests;
mod rediscover_tests;
mod startup_tests;
mod tls_tests;
mod token_tests;
mod web_tests;
