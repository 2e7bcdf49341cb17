"""
Requests to lift failed-login lockouts (C{admin unlock}), from the admin
command to every running server process (issue 15 finding 5).
"""
