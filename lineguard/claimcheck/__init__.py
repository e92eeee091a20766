"""``lineguard claimcheck``: keep the claim-check store bounded by the frames topic's retention."""
