//! Model providers: streaming adapters and failover (issue 3).
