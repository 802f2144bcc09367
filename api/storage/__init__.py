"""Object storage for business documents and media: one interface, a local directory by default.

It lives outside ``domains/`` because several contexts store objects
(merchant onboarding documents today; product media, delivery proofs later).
"""
