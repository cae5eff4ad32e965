pub mod codec;
pub mod fsm;
