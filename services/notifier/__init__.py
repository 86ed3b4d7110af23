"""notifier: staff directory, routing of tasks to inboxes, deliveries and deadlines."""
