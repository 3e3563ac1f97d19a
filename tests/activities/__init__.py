"""Tests of the job activities: real git, real processes, stand-in agent and GitHub API."""
