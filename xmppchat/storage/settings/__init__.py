"""
Run-time settings (issue 19, the admin panel's Chat settings and
Applications pages): values an administrator changed in the panel, kept
in the storage so that every node of a cluster and every restart sees
them (L{xmppchat.runsettings}).
"""
