package loadgen

import "testing"

func TestCalibrate(t *testing.T) {
	c, err := Calibrate(3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if c.ES256Verify <= 0 || c.EdDSASign <= 0 || c.Floor != c.ES256Verify+c.EdDSASign {
		t.Errorf("Calibrate = %+v", c)
	}
}
