"""From table cells to tensors: processors fitted on train, dataset, collate, splits."""
