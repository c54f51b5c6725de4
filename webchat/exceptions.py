from core.exceptions import ApplicationError, NotFound


class UnknownSite(NotFound):
    code = "unknown_site"
    default_message = "No active chat site has that key."


class OriginNotAllowed(ApplicationError):
    code = "origin_not_allowed"
    status = 403
    default_message = "This website is not allowed to use this chat."


class ChallengeInvalid(ApplicationError):
    code = "challenge_invalid"
    status = 403
    default_message = "The init challenge is invalid, expired or already used. Fetch config again."


class TokenInvalid(ApplicationError):
    code = "token_invalid"
    status = 401
    default_message = "The session token is not valid. Start a new session."


class TokenExpired(ApplicationError):
    code = "token_expired"
    status = 401
    default_message = "The session token has expired. Start a new session."


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    default_message = "That conversation does not exist or is not yours."


class WebchatDisabled(ApplicationError):
    code = "webchat_disabled"
    status = 403
    default_message = "Chat is not available on this website right now."


class IdentityInvalid(ApplicationError):
    code = "identity_invalid"
    status = 403
    default_message = "The user_hash does not match user_id."
