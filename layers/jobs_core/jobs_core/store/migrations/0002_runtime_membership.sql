-- The user that runs the migrations may act as the runtime and the sweeper (SET ROLE), so a
-- deployment with one database secret works as is. A separate login for the Lambdas needs
-- the same two grants: GRANT jobs_runtime, jobs_sweeper TO that_login;
GRANT jobs_runtime TO CURRENT_USER;
GRANT jobs_sweeper TO CURRENT_USER;
