//! The running collector: builds the component graph from a plan, starts it, serves internal
//! metrics, and drains it on SIGINT/SIGTERM.
//! (skeleton: filled in by the service work)
