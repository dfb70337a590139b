//! AddPartitionsToTxn (v0..=3) is a transaction request, not a partitioned
//! one (it goes to its transaction's coordinator whole), but the proxy
//! refuses one that would span clusters partition by partition, in the
//! same shape.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};

use super::{topic_answer, PartitionAnswer};
use crate::domain::stitch::Shift;

topic_answer!(
    AddPartitionsToTxnTopicResult,
    name,
    results_by_partition,
    AddPartitionsToTxnPartitionResult,
    partition_index
);

impl PartitionAnswer for AddPartitionsToTxnPartitionResult {
    fn refused(index: i32, error_code: i16) -> Self {
        AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(index)
            .with_partition_error_code(error_code)
    }

    /// Names no offset.
    fn shift(&mut self, _shift: Shift) {}
}
