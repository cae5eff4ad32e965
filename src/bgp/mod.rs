pub mod codec;
pub mod fsm;
pub mod session;
pub mod speaker;
