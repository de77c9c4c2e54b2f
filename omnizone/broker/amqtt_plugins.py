"""amqtt 0.12 plugins enforcing the same password file and ACL as Mosquitto.

amqtt's own FileAuthPlugin only knows argon2/sha512-crypt hashes and its ACL
plugin neither reads Mosquitto ACL files nor checks will topics, so the
embedded broker uses these instead. Imported only inside the embedded broker
process (``python -m omnizone.broker.embedded``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from omnizone.broker.accounts import (
    AclRule,
    may_publish,
    may_receive,
    may_subscribe,
    parse_acl,
    parse_password_file,
    verify_password,
)


def _load_acl(acl_file: str) -> list[AclRule]:
    path = Path(acl_file)
    return parse_acl(path.read_text(encoding="utf-8"), source=str(path))


class PasswordFileAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Username + ``$7$`` password required; a will topic must be writable by the user."""

    @dataclass
    class Config:
        password_file: str = ""
        acl_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        path = Path(self.config.password_file)
        self._users = parse_password_file(path.read_text(encoding="utf-8"), source=str(path))
        self._rules = _load_acl(self.config.acl_file)
        self.context.logger.info("%d broker account(s) loaded from %s", len(self._users), path)

    async def authenticate(self, *, session: Session) -> bool:
        username = session.username
        if not username:
            self.context.logger.warning("refused %s: no username", session.client_id)
            return False
        encoded = self._users.get(username)
        if encoded is None or not verify_password(session.password or "", encoded):
            self.context.logger.warning(
                "refused %s: bad username or password for %r", session.client_id, username
            )
            return False
        if session.will_flag and not may_publish(self._rules, username, session.will_topic or ""):
            # Mosquitto refuses such a CONNECT too; amqtt would publish the will unchecked.
            self.context.logger.warning(
                "refused %s: user %r may not publish its will topic %r",
                session.client_id,
                username,
                session.will_topic,
            )
            return False
        return True


class AclTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Publish needs write access; subscribe must stay inside a readable pattern;
    each delivered message needs read access on its topic."""

    @dataclass
    class Config:
        acl_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._rules = _load_acl(self.config.acl_file)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if session is None or topic is None or action is None:
            return False
        user = session.username
        if action == Action.PUBLISH:
            allowed = may_publish(self._rules, user, topic)
        elif action == Action.SUBSCRIBE:
            allowed = may_subscribe(self._rules, user, topic)
        elif action == Action.RECEIVE:
            allowed = may_receive(self._rules, user, topic)
        else:
            allowed = False
        if not allowed:
            self.context.logger.info("denied %s %s on %r", user, action, topic)
        return allowed
