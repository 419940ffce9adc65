//! Integration tests: the daemon against the in-process simulators on 127.0.0.1:0.

mod api;
mod api_compat;
mod api_limits;
mod binary;
mod chaos;
mod check;
mod config;
mod contract;
mod failover;
mod fishroom;
mod fishroom_polls;
mod formatting;
mod gaps;
mod harness;
mod heihei;
mod hostile;
mod iirose;
mod load;
mod missevan;
mod postgres;
mod reload;
mod reload_refused;
mod reload_rooms;
mod slowloris;
mod status;
mod yunhu;
