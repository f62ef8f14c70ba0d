"""What the deploy stage's tests share with the trade-off panel's (tests/panels/test_deploy.py)."""

TEXT = "北京的冬天很冷，但是人们的生活依然丰富多彩。The quick brown fox jumps over 13 lazy dogs. 价格：１２９９元"
