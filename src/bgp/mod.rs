pub mod codec;
pub mod fsm;
pub mod speaker;
