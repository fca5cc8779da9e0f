"""The errors a caller can cause: plain classes, mapped to responses by each door (native/http.py,
aws/http.py)."""


class JobsError(Exception):
    """Base of every error a caller can cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(JobsError):
    """No credentials, or credentials nobody issued (401)."""


class Forbidden(JobsError):
    """Valid credentials without the right to this (403)."""


class NotFound(JobsError):
    """Absent, or another tenant's or device's (404)."""


class Conflict(JobsError):
    """Stale execution_number, or a job_id already taken (409)."""


class InUse(Conflict):
    """Something that cannot go while something else depends on it (409)."""


class InvalidRequest(JobsError):
    """A request the state machine or the rules refuse (400)."""


class Unprocessable(InvalidRequest):
    """Well-formed input whose content cannot be used: a job document's placeholders (422)."""


class LimitExceeded(InvalidRequest):
    """More of something than a job or a tenant may have (400; AWS's LimitExceededException)."""


class Refused(InvalidRequest):
    """A transition the state machine refuses from the execution's status (400)."""


class Ended(Refused):
    """The execution is in a terminal status: it cannot change any more (400)."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached; nothing was changed (503)."""


class DatabaseBusy(DatabaseUnavailable):
    """The database gave up on this call for now (a lock or statement timeout, a deadlock); nothing
    was changed (503; try again)."""
