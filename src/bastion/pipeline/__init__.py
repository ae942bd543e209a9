"""The guard pipeline: request view, decisions, guard contract, order table and chain."""

from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny, ProblemField
from bastion.pipeline.guard import Guard, Phase
from bastion.pipeline.problem import problem_response
from bastion.pipeline.request import ClientAddress, Headers, Request, State, StateKey, TLSInfo
from bastion.pipeline.response import Endpoint, FunctionEndpoint, Response

__all__ = [
    "ALLOW",
    "Allow",
    "ClientAddress",
    "Decision",
    "Deny",
    "Endpoint",
    "FunctionEndpoint",
    "Guard",
    "GuardChain",
    "Headers",
    "Phase",
    "ProblemField",
    "Request",
    "Response",
    "State",
    "StateKey",
    "TLSInfo",
    "problem_response",
]
