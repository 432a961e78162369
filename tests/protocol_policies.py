"""Policies that break the protocol of aolo.envs.protocol, loaded by spec (``protocol_policies:Name``) in
tests/test_protocol.py."""

import numpy as np


class _Centre:
    def begin_episode(self, info):
        self.shape = (len(info.agents), *info.action_space.shape)

    def act(self, observations):
        return np.zeros(self.shape)


class WrongShape(_Centre):
    def act(self, observations):
        return np.zeros(self.shape[0])  # one number per user instead of one action


class NaNAtEpoch3(_Centre):
    def act(self, observations):
        actions = np.zeros(self.shape)
        if observations.epoch == 3:
            actions[1, 0] = np.nan
        return actions


class OutOfRange(_Centre):
    def act(self, observations):
        return np.full(self.shape, 1.5)


class MissingAgent(_Centre):
    def act(self, observations):
        return {observations.agents[0]: np.zeros(self.shape[1])}


class RaisesOnInit:
    def __init__(self):
        raise RuntimeError("needs a weights file")

    def act(self, observations):  # pragma: no cover
        return None


class NoAct:
    def begin_episode(self, info):
        pass


centre_instance = _Centre()  # an instance works as well as a class
