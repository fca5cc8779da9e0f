"""The shared layer of the IoT jobs service: state machine, SQL, models, database and auth."""
