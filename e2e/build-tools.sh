#!/usr/bin/env bash
# Placeholder until the control-plane tools build lands (issue 5).
echo "build-tools: nothing to build yet"
